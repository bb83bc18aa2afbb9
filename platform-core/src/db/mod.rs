//! The database layer: one handle over SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! [`Db`] holds one of the three concrete sqlx pools and dispatches to it.
//! Statements are built with [`Sql`] from resource metadata and bound
//! parameters, and rows come back as lists of [`Value`]s decoded by the
//! column types the caller expects. sqlx's `Any` driver is not used: it has
//! no dates, UUIDs or JSON and emits `?` placeholders on PostgreSQL.

pub mod dialect;
mod migrate;
mod sql;

pub(crate) use migrate::hex;
pub use migrate::{Migration, MigrationSet, SQLITE_FOREIGN_KEYS_OFF};
pub use sql::Sql;
pub(crate) use sql::{like_escape, storage_type};

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, SubsecRound, Utc};
use sqlx::Row as _;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

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
}

/// One decoded row: values in the order of the selected columns.
pub type Row = Vec<Value>;

/// A pooled connection idle for at least this long is pinged before it is
/// handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pool's liveness check, only where it can find something: sqlx pings
/// every connection it hands out by default (a round trip on every
/// acquire, about one statement in six of a create), and on every release.
/// The release's ping already discards a connection that broke while in
/// use, so a connection back from work less than [`PING_IF_IDLE_FOR`] ago
/// is handed out as it is; one that sat idle longer (where a restarted
/// server or a dropped idle connection shows) is pinged first, as sqlx's
/// documentation suggests and HikariCP does (its bypass window is 500 ms).
fn ping_when_idle<DB: sqlx::Database>(
    options: sqlx::pool::PoolOptions<DB>,
) -> sqlx::pool::PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

impl Db {
    /// Connects to `url` (`sqlite://file.db?mode=rwc`, `sqlite::memory:`,
    /// `postgres://...`, `mysql://...`).
    ///
    /// SQLite runs in WAL mode with foreign keys on and a 5 s busy timeout.
    /// MySQL sessions use strict mode and UTC.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, DbOptions::default()).await
    }

    /// Connects with explicit pool settings.
    pub async fn connect_with(url: &str, options: DbOptions) -> Result<Self> {
        let backend = Backend::from_url(url)?;
        let cfg = |e: sqlx::Error| Error::Configuration(format!("database URL: {e}"));
        let pool = match backend {
            Backend::Sqlite => {
                let memory = url.contains(":memory:") || url.contains("mode=memory");
                let opts = SqliteConnectOptions::from_str(url).map_err(cfg)?;
                let file = opts.get_filename().to_path_buf();
                // The default database's folder (`.platform/`) is made on
                // first use, with the `.gitignore` that keeps it out of git.
                if !memory
                    && crate::platform::in_state_dir(&file)
                    && let Some(dir) = file.parent()
                {
                    crate::platform::ensure_state_dir(dir)?;
                }
                let target = Target {
                    dialect: "SQLite",
                    url,
                    host: String::new(),
                    port: 0,
                    database: file.display().to_string(),
                    user: String::new(),
                };
                let opts = opts
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
                    .statement_cache_capacity(256);
                let opts = if memory {
                    opts
                } else {
                    opts.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                };
                let pool = ping_when_idle(SqlitePoolOptions::new())
                    .max_connections(if memory { 1 } else { options.max_connections })
                    .min_connections(u32::from(memory))
                    .idle_timeout(if memory {
                        None
                    } else {
                        Some(Duration::from_secs(600))
                    })
                    .max_lifetime(if memory {
                        None
                    } else {
                        Some(Duration::from_secs(1800))
                    })
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(|e| connect_error(&target, e))?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(url).map_err(cfg)?;
                let target = Target {
                    dialect: "PostgreSQL",
                    url,
                    host: opts
                        .get_socket()
                        .map_or_else(|| opts.get_host().to_owned(), |p| p.display().to_string()),
                    port: opts.get_port(),
                    database: opts.get_database().unwrap_or_default().to_owned(),
                    user: opts.get_username().to_owned(),
                };
                probe::<sqlx::PgConnection>(&target, &opts, options.acquire_timeout).await?;
                let pool = ping_when_idle(PgPoolOptions::new())
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(|e| connect_error(&target, e))?;
                Pool::Postgres(pool)
            }
            Backend::MySql => {
                let opts = MySqlConnectOptions::from_str(url).map_err(cfg)?;
                let target = Target {
                    dialect: "MySQL/MariaDB",
                    url,
                    host: opts
                        .get_socket()
                        .map_or_else(|| opts.get_host().to_owned(), |p| p.display().to_string()),
                    port: opts.get_port(),
                    database: opts.get_database().unwrap_or_default().to_owned(),
                    user: opts.get_username().to_owned(),
                };
                probe::<sqlx::MySqlConnection>(&target, &opts, options.acquire_timeout).await?;
                let opts = opts.charset("utf8mb4").timezone(Some("+00:00".to_owned()));
                let pool = ping_when_idle(MySqlPoolOptions::new())
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::Executor::execute(
                                &mut *conn,
                                "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE'",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await
                    .map_err(|e| connect_error(&target, e))?;
                Pool::MySql(pool)
            }
        };
        Ok(Self {
            pool,
            backend,
            audit_key: None,
            outbox: None,
            statements: Arc::default(),
        })
    }

    /// This pool, with `crypto` as the key that authenticates the audit
    /// entries written in its transactions (the platform sets it).
    pub fn with_audit_key(mut self, crypto: Arc<Crypto>) -> Self {
        self.audit_key = Some(crypto);
        self
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

    /// Begins a transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction that reads before it writes
    /// cannot fail half-way with "database is locked".
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match &self.pool {
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => TxInner::Postgres(p.begin().await?),
            Pool::MySql(p) => TxInner::MySql(p.begin().await?),
        };
        Ok(Tx {
            inner: Some(inner),
            backend: self.backend,
            audit_key: self.audit_key.clone(),
            outbox: self.outbox.clone(),
            events: Vec::new(),
            on_commit: Vec::new(),
        })
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

macro_rules! dispatch_tx {
    ($inner:expr, $c:ident => $body:expr) => {
        match $inner {
            TxInner::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            TxInner::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
            TxInner::MySql(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
}

/// An open transaction. Dropped without [`Tx::commit`] or [`Tx::rollback`]
/// (an early return, a panic, a cancelled request), it is rolled back at
/// once on a background task, so no locks linger on a pooled connection.
pub struct Tx {
    inner: Option<TxInner>,
    backend: Backend,
    audit_key: Option<Arc<Crypto>>,
    outbox: Option<crate::outbox::Outbox>,
    /// Outbox events recorded in this transaction, dispatched after commit.
    events: Vec<crate::outbox::Event>,
    /// What to run once this transaction has committed.
    on_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        // sqlx only queues the ROLLBACK of a dropped transaction until the
        // connection is next used; an idle pooled connection would keep its
        // row locks until then.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = match inner {
                    TxInner::Sqlite(t) => t.rollback().await,
                    TxInner::Postgres(t) => t.rollback().await,
                    TxInner::MySql(t) => t.rollback().await,
                };
            });
        }
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Tx {
    /// The back end.
    pub fn backend(&self) -> Backend {
        self.backend
    }
    /// The key that authenticates audit entries written in this
    /// transaction (`None` on a pool the platform did not set one on).
    pub fn crypto(&self) -> Option<&Arc<Crypto>> {
        self.audit_key.as_ref()
    }
    /// A new statement builder.
    pub fn sql(&self) -> Sql {
        Sql::new(self.backend)
    }
    /// Runs a statement, returning the rows affected.
    pub async fn execute(&mut self, sql: Sql) -> Result<u64> {
        dispatch_tx!(self.inner_mut()?, c => c.exec_sql(sql).await)
    }
    /// Runs an `INSERT`, returning the id the database generated
    /// (`RETURNING` on SQLite and PostgreSQL, `LAST_INSERT_ID()` on MySQL).
    /// On SQLite and PostgreSQL the statement must end with `RETURNING <pk>`.
    pub async fn insert_returning_id(&mut self, sql: Sql) -> Result<i64> {
        match self.inner_mut()? {
            TxInner::MySql(t) => {
                let q = bind_mysql(
                    sqlx::query(sqlx::AssertSqlSafe(sql.text().to_owned())),
                    sql.args,
                );
                let r = q.execute(&mut **t).await?;
                i64::try_from(r.last_insert_id()).map_err(|e| Error::Backend {
                    backend: "mysql",
                    source: Box::new(e),
                })
            }
            TxInner::Sqlite(t) => {
                let rows = (&mut **t).fetch_sql(sql, &[FieldType::I64]).await?;
                first_i64(rows)
            }
            TxInner::Postgres(t) => {
                let rows = (&mut **t).fetch_sql(sql, &[FieldType::I64]).await?;
                first_i64(rows)
            }
        }
    }
    /// Runs a query and decodes every row.
    pub async fn fetch_all(&mut self, sql: Sql, types: &[FieldType]) -> Result<Vec<Row>> {
        dispatch_tx!(self.inner_mut()?, c => c.fetch_sql(sql, types).await)
    }
    /// Runs a query and decodes the first row.
    pub async fn fetch_optional(&mut self, sql: Sql, types: &[FieldType]) -> Result<Option<Row>> {
        Ok(self.fetch_all(sql, types).await?.into_iter().next())
    }
    /// Runs a query returning one integer.
    pub async fn fetch_i64(&mut self, sql: Sql) -> Result<Option<i64>> {
        Ok(self
            .fetch_optional(sql, &[FieldType::I64])
            .await?
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_i64()))
    }
    fn inner_mut(&mut self) -> Result<&mut TxInner> {
        self.inner.as_mut().ok_or_else(|| Error::Backend {
            backend: "database",
            source: "transaction already finished".into(),
        })
    }
    /// Commits.
    pub async fn commit(mut self) -> Result<()> {
        match self.inner.take().ok_or_else(|| Error::Backend {
            backend: "database",
            source: "transaction already finished".into(),
        })? {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
            TxInner::MySql(t) => t.commit().await?,
        }
        if let Some(outbox) = &self.outbox {
            outbox.committed(std::mem::take(&mut self.events));
        }
        for f in std::mem::take(&mut self.on_commit) {
            f();
        }
        Ok(())
    }

    /// Runs `f` once this transaction has committed (never when it rolls
    /// back): tell other nodes about a change only once they can see it.
    pub fn on_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(f));
    }

    /// Keeps `events` (recorded in this transaction) for the dispatcher,
    /// which gets them when the transaction commits.
    pub(crate) fn defer_events(&mut self, events: Vec<crate::outbox::Event>) {
        self.events.extend(events);
    }
    /// Commits when `result` is `Ok`, rolls back when it is `Err`, and
    /// returns `result` (or the commit's error).
    pub async fn finish<T>(self, result: Result<T>) -> Result<T> {
        match result {
            Ok(v) => {
                self.commit().await?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.rollback().await;
                Err(e)
            }
        }
    }
    /// Rolls back.
    pub async fn rollback(mut self) -> Result<()> {
        let Some(inner) = self.inner.take() else {
            return Ok(());
        };
        match inner {
            TxInner::Sqlite(t) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
            TxInner::MySql(t) => t.rollback().await?,
        }
        Ok(())
    }
}

fn first_i64(rows: Vec<Row>) -> Result<i64> {
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .and_then(|v| v.as_i64())
        .ok_or_else(|| Error::Backend {
            backend: "database",
            source: "INSERT returned no id".into(),
        })
}

// ---- per-back-end execution -------------------------------------------------

trait Exec: Sized {
    async fn exec_sql(self, sql: Sql) -> Result<u64>;
    async fn fetch_sql(self, sql: Sql, types: &[FieldType]) -> Result<Vec<Row>>;
}

macro_rules! impl_exec {
    ($db:ty, $bind:ident, $decode:ident, $($target:ty),+) => {$(
        impl<'c> Exec for $target {
            async fn exec_sql(self, sql: Sql) -> Result<u64> {
                let q = $bind(sqlx::query(sqlx::AssertSqlSafe(sql.text().to_owned())), sql.args);
                Ok(q.execute(self).await?.rows_affected())
            }
            async fn fetch_sql(self, sql: Sql, types: &[FieldType]) -> Result<Vec<Row>> {
                let q = $bind(sqlx::query(sqlx::AssertSqlSafe(sql.text().to_owned())), sql.args);
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

type Query<DB> = sqlx::query::Query<'static, DB, <DB as sqlx::Database>::Arguments>;

/// Runs a statement on one SQLite connection (the migration runner's).
pub(crate) async fn execute_on_sqlite(conn: &mut sqlx::SqliteConnection, sql: Sql) -> Result<u64> {
    conn.exec_sql(sql).await
}

/// Times are stored with microsecond precision everywhere, so a value reads
/// back exactly as written (the audit chain depends on that).
pub(crate) fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// SQLite stores times as RFC 3339 text with exactly six fractional digits
/// and `Z`, so text order is time order.
pub(crate) fn sqlite_time(t: DateTime<Utc>) -> String {
    truncate_micros(t).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn bind_sqlite(mut q: Query<sqlx::Sqlite>, args: Vec<sql::Arg>) -> Query<sqlx::Sqlite> {
    for a in args {
        q = match a.value {
            Value::Null => q.bind(None::<String>),
            Value::Bool(v) => q.bind(v),
            Value::Int(v) => q.bind(v),
            Value::Float(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Date(v) => q.bind(v.format("%Y-%m-%d").to_string()),
            Value::DateTime(v) => q.bind(sqlite_time(v)),
            Value::Uuid(v) => q.bind(v.hyphenated().to_string()),
            Value::Json(v) => q.bind(v.to_string()),
        };
    }
    q
}

fn bind_pg(mut q: Query<sqlx::Postgres>, args: Vec<sql::Arg>) -> Query<sqlx::Postgres> {
    for a in args {
        q = match (a.value, a.ty) {
            (Value::Null, ty) => match ty {
                FieldType::Bool => q.bind(None::<bool>),
                FieldType::I32 => q.bind(None::<i32>),
                FieldType::I64 => q.bind(None::<i64>),
                FieldType::F64 => q.bind(None::<f64>),
                FieldType::Date => q.bind(None::<NaiveDate>),
                FieldType::DateTime => q.bind(None::<DateTime<Utc>>),
                FieldType::Uuid => q.bind(None::<Uuid>),
                FieldType::Json => q.bind(None::<sqlx::types::Json<serde_json::Value>>),
                _ => q.bind(None::<String>),
            },
            (Value::Int(v), FieldType::I32) => q.bind(i32::try_from(v).unwrap_or(i32::MAX)),
            (Value::Bool(v), _) => q.bind(v),
            (Value::Int(v), _) => q.bind(v),
            (Value::Float(v), _) => q.bind(v),
            (Value::Text(v), _) => q.bind(v),
            (Value::Date(v), _) => q.bind(v),
            (Value::DateTime(v), _) => q.bind(truncate_micros(v)),
            (Value::Uuid(v), _) => q.bind(v),
            (Value::Json(v), _) => q.bind(sqlx::types::Json(v)),
        };
    }
    q
}

fn bind_mysql(mut q: Query<sqlx::MySql>, args: Vec<sql::Arg>) -> Query<sqlx::MySql> {
    for a in args {
        q = match (a.value, a.ty) {
            (Value::Null, ty) => match ty {
                FieldType::Bool => q.bind(None::<bool>),
                FieldType::I32 | FieldType::I64 => q.bind(None::<i64>),
                FieldType::F64 => q.bind(None::<f64>),
                FieldType::Date => q.bind(None::<NaiveDate>),
                FieldType::DateTime => q.bind(None::<DateTime<Utc>>),
                _ => q.bind(None::<String>),
            },
            (Value::Bool(v), _) => q.bind(v),
            (Value::Int(v), _) => q.bind(v),
            (Value::Float(v), _) => q.bind(v),
            (Value::Text(v), _) => q.bind(v),
            (Value::Date(v), _) => q.bind(v),
            (Value::DateTime(v), _) => q.bind(truncate_micros(v)),
            (Value::Uuid(v), _) => q.bind(v.hyphenated().to_string()),
            (Value::Json(v), _) => q.bind(v.to_string()),
        };
    }
    q
}

fn decode_err(col: usize, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "database",
        source: format!("cannot decode column {col}: {e}").into(),
    }
}

fn parse_time_text(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
        .or_else(|| {
            DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

macro_rules! get {
    ($row:expr, $i:expr, $t:ty) => {
        $row.try_get::<Option<$t>, _>($i)
            .map_err(|e| decode_err($i, e))?
    };
}

fn decode_sqlite(row: &sqlx::sqlite::SqliteRow, types: &[FieldType]) -> Result<Row> {
    let mut out = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate().take(row.columns().len()) {
        let v = match ty {
            FieldType::Bool => get!(row, i, bool).map(Value::Bool),
            FieldType::I32 | FieldType::I64 => get!(row, i, i64).map(Value::Int),
            FieldType::F64 => get!(row, i, f64).map(Value::Float),
            FieldType::String | FieldType::Text => get!(row, i, String).map(Value::Text),
            FieldType::Date => get!(row, i, NaiveDate).map(Value::Date),
            FieldType::DateTime => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::DateTime(
                    parse_time_text(&s).ok_or_else(|| decode_err(i, format!("bad time {s:?}")))?,
                )),
            },
            FieldType::Uuid => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::Uuid(
                    Uuid::parse_str(&s).map_err(|e| decode_err(i, e))?,
                )),
            },
            FieldType::Json => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::Json(
                    serde_json::from_str(&s).map_err(|e| decode_err(i, e))?,
                )),
            },
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

fn decode_pg(row: &sqlx::postgres::PgRow, types: &[FieldType]) -> Result<Row> {
    let mut out = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate().take(row.columns().len()) {
        let v = match ty {
            FieldType::Bool => get!(row, i, bool).map(Value::Bool),
            FieldType::I32 => get!(row, i, i32).map(|v| Value::Int(i64::from(v))),
            FieldType::I64 => get!(row, i, i64).map(Value::Int),
            FieldType::F64 => get!(row, i, f64).map(Value::Float),
            FieldType::String | FieldType::Text => get!(row, i, String).map(Value::Text),
            FieldType::Date => get!(row, i, NaiveDate).map(Value::Date),
            FieldType::DateTime => get!(row, i, DateTime<Utc>).map(Value::DateTime),
            FieldType::Uuid => get!(row, i, Uuid).map(Value::Uuid),
            FieldType::Json => {
                get!(row, i, sqlx::types::Json<serde_json::Value>).map(|j| Value::Json(j.0))
            }
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

fn decode_mysql(row: &sqlx::mysql::MySqlRow, types: &[FieldType]) -> Result<Row> {
    let mut out = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate().take(row.columns().len()) {
        let v = match ty {
            FieldType::Bool => get!(row, i, bool).map(Value::Bool),
            FieldType::I32 | FieldType::I64 => get!(row, i, i64).map(Value::Int),
            FieldType::F64 => get!(row, i, f64).map(Value::Float),
            FieldType::String | FieldType::Text => get!(row, i, String).map(Value::Text),
            FieldType::Date => get!(row, i, NaiveDate).map(Value::Date),
            FieldType::DateTime => get!(row, i, DateTime<Utc>).map(Value::DateTime),
            FieldType::Uuid => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::Uuid(
                    Uuid::parse_str(&s).map_err(|e| decode_err(i, e))?,
                )),
            },
            FieldType::Json => match get!(row, i, String) {
                None => None,
                Some(s) => Some(Value::Json(
                    serde_json::from_str(&s).map_err(|e| decode_err(i, e))?,
                )),
            },
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

/// Maps a sqlx error to the platform's meaning: a server that cannot be
/// reached is [`Error::Unavailable`], a unique or foreign-key violation is
/// [`Error::Conflict`] naming the constraint, anything else is
/// [`Error::Backend`].
/// One connection made and closed before the pool is built: the pool
/// retries a refused connection until its timeout and then reports only
/// the timeout, while this answers at once with the reason.
async fn probe<C: sqlx::Connection>(
    target: &Target<'_>,
    opts: &C::Options,
    timeout: Duration,
) -> Result<()> {
    match tokio::time::timeout(timeout, C::connect_with(opts)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(connect_error(target, e)),
        Err(_) => Err(connect_error(target, sqlx::Error::PoolTimedOut)),
    }
}

/// What a connection was attempted to, for the message of a failed one.
struct Target<'a> {
    dialect: &'static str,
    url: &'a str,
    host: String,
    port: u16,
    database: String,
    user: String,
}

/// A failed first connection as a message that says what to check: the
/// server, host and port (unreachable), the database's name, the user and
/// password, or the SQLite file's folder; with the URL, its password
/// masked. Never the server's own source location or the driver's debug
/// text.
fn connect_error(t: &Target<'_>, e: sqlx::Error) -> Error {
    let url = crate::platform::redact_url(t.url);
    let at = if t.port == 0 {
        t.host.clone()
    } else {
        format!("{}:{}", t.host, t.port)
    };
    let unreachable = |why: &str| Error::Unavailable {
        backend: "database",
        source: format!(
            "cannot connect to {} at {at} ({url}): {why}. Check that the server is running, \
             and the host and port in the URL (PLATFORM_DATABASE_URL)",
            t.dialect
        )
        .into(),
    };
    match e {
        sqlx::Error::Io(io) => unreachable(&io_reason(&io)),
        sqlx::Error::PoolTimedOut => unreachable("no answer in time (is a firewall in the way?)"),
        sqlx::Error::Tls(tls) => unreachable(&format!(
            "TLS failed ({})",
            without_source_location(&tls.to_string())
        )),
        sqlx::Error::Database(db) => {
            // MySQL's error number (1049 unknown database, 1045 access
            // denied) says more than its SQLSTATE.
            let code = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|m| m.number().to_string())
                .or_else(|| db.code().map(|c| c.into_owned()))
                .unwrap_or_default();
            let message = without_source_location(db.message());
            match (t.dialect, code.as_str()) {
                ("SQLite", _) => Error::Configuration(format!(
                    "cannot open the SQLite database {} ({message}): check that its folder \
                     exists and is writable",
                    t.database
                )),
                (_, "3D000" | "1049") => Error::Configuration(format!(
                    "the database `{}` does not exist on the {} server at {at} ({url}): create it \
                     (CREATE DATABASE {}) or correct its name in the URL (PLATFORM_DATABASE_URL)",
                    t.database, t.dialect, t.database
                )),
                (_, "28P01" | "28000" | "1045" | "1044") => Error::Configuration(format!(
                    "the {} server at {at} refused the user `{}` ({url}): {message}. Check the user \
                     name and password in the URL (PLATFORM_DATABASE_URL) and the user's rights",
                    t.dialect, t.user
                )),
                _ => unreachable(&message),
            }
        }
        other => match map_sqlx_error(other) {
            Error::Unavailable { source, .. } | Error::Backend { source, .. } => {
                unreachable(&without_source_location(&source.to_string()))
            }
            e => e,
        },
    }
}

/// `text` without the driver's or server's source locations
/// (`(sqlx_postgres::connection::tls:109)`, `at line 948`): they tell the
/// reader nothing about what to fix.
fn without_source_location(text: &str) -> String {
    let is_location = |inner: &str| {
        inner.contains("::")
            && inner
                .rsplit(':')
                .next()
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(" (") {
        let after = &rest[open + 2..];
        match after.find(')') {
            Some(len) if is_location(&after[..len]) => {
                out.push_str(&rest[..open]);
                rest = &after[len + 1..];
            }
            _ => {
                out.push_str(&rest[..open + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    while let Some(i) = out.find(" at line ") {
        let digits = out[i + 9..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            break;
        }
        out.replace_range(i..i + 9 + digits, "");
    }
    out
}

/// The plain reason of a socket error ("connection refused"), without the
/// OS error number.
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused (nothing listens on that port)".to_owned(),
        K::TimedOut => "the connection timed out".to_owned(),
        K::NotFound => "no such host or socket".to_owned(),
        K::PermissionDenied => "permission denied".to_owned(),
        K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof => {
            "the server closed the connection".to_owned()
        }
        _ => {
            let text = e.to_string();
            text.split(" (os error").next().unwrap_or(&text).to_owned()
        }
    }
}

pub(crate) fn map_sqlx_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Error::Unavailable {
            backend: "database",
            source: Box::new(e),
        },
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLSTATE class 08 (connection exception) and 57P (operator
            // intervention: shutdown) on PostgreSQL; SQLITE_BUSY (5) after the
            // busy timeout; MySQL 1053 (server shutdown), 2006, 2013.
            let unavailable = code.starts_with("08")
                || code.starts_with("57P")
                || code == "5"
                || code == "1053"
                || code == "2006"
                || code == "2013";
            if unavailable {
                return Error::Unavailable {
                    backend: "database",
                    source: db.into_error(),
                };
            }
            if db.is_unique_violation() || db.is_foreign_key_violation() {
                let message = db.message().to_owned();
                let constraint = db
                    .constraint()
                    .map(str::to_owned)
                    .or_else(|| constraint_from_message(&message))
                    .unwrap_or_default();
                let what = if db.is_unique_violation() {
                    "has already been taken"
                } else {
                    "refers to a record that does not exist or is still referenced"
                };
                return Error::Conflict {
                    field: constraint,
                    message: what.to_owned(),
                };
            }
            Error::Backend {
                backend: "database",
                source: db.into_error(),
            }
        }
        other => Error::Backend {
            backend: "database",
            source: Box::new(other),
        },
    }
}

/// Pulls the constraint or column out of SQLite's and MySQL's messages
/// ("UNIQUE constraint failed: invoices.number", "... for key 'invoices_number_unique'").
fn constraint_from_message(m: &str) -> Option<String> {
    if let Some(rest) = m.strip_prefix("UNIQUE constraint failed: ") {
        let first = rest.split(',').next()?.trim();
        return Some(first.replace('.', "_") + "_unique");
    }
    if let Some(i) = m.find("for key '") {
        let rest = &m[i + 9..];
        let key = rest.split('\'').next()?;
        return Some(key.rsplit('.').next().unwrap_or(key).to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_locations_are_left_out_of_connection_errors() {
        assert_eq!(
            without_source_location(
                "unexpected response from SSLRequest: 0x48 (sqlx_postgres::connection::tls:109)"
            ),
            "unexpected response from SSLRequest: 0x48"
        );
        assert_eq!(
            without_source_location("database \"x\" does not exist at line 948 (a) (b::c:1) end"),
            "database \"x\" does not exist (a) end"
        );
        assert_eq!(without_source_location("plain (text)"), "plain (text)");
    }

    #[test]
    fn constraint_names_from_messages() {
        assert_eq!(
            constraint_from_message("UNIQUE constraint failed: invoices.number").as_deref(),
            Some("invoices_number_unique")
        );
        assert_eq!(
            constraint_from_message(
                "Duplicate entry 'X' for key 'invoices.invoices_number_unique'"
            )
            .as_deref(),
            Some("invoices_number_unique")
        );
    }

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

    #[test]
    fn sqlite_times_sort_as_text() {
        let a = DateTime::parse_from_rfc3339("2024-01-01T00:00:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = DateTime::parse_from_rfc3339("2024-01-01T00:00:05.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(sqlite_time(a) < sqlite_time(b));
        assert_eq!(parse_time_text(&sqlite_time(b)), Some(b));
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
