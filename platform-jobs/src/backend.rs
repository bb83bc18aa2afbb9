//! Where the jobs wait: apalis storages over the main database (SQLite,
//! PostgreSQL), a separate SQLite file, or Redis. One storage per queue,
//! all holding [`Envelope`]s.

use std::str::FromStr;
use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use platform_core::Platform;
use platform_core::db::Backend;
use platform_core::error::{Error, Result};
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::job::Envelope;

/// Which back end the jobs are on (shown on the dashboard and `/health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueBackend {
    /// The main SQLite database.
    Sqlite,
    /// A separate SQLite file (`sqlite://` queue URL).
    SqliteFile,
    /// The main PostgreSQL database (tables in the `apalis` schema).
    Postgres,
    /// Redis (`redis://` queue URL, the `redis` feature).
    Redis,
}

/// How many heartbeats a worker may miss before the jobs it holds are
/// taken by another worker (see [`crate::Jobs::heartbeat`]).
pub(crate) const MISSED_HEARTBEATS: usize = 5;

impl QueueBackend {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::SqliteFile => "sqlite-file",
            Self::Postgres => "postgres",
            Self::Redis => "redis",
        }
    }
}

#[derive(Clone)]
pub(crate) enum Transport {
    Sqlite(SqlitePool, QueueBackend),
    Postgres(PgPool),
    #[cfg(feature = "redis")]
    Redis(apalis_redis::ConnectionManager),
}

/// The storage of one queue.
#[derive(Clone)]
pub(crate) enum QueueStore {
    Sqlite(SqliteStorage<Envelope>),
    Postgres(PostgresStorage<Envelope>),
    #[cfg(feature = "redis")]
    Redis(apalis_redis::RedisStorage<Envelope>),
}

/// The apalis queue name of a platform queue.
pub(crate) fn apalis_queue(namespace: &str, queue: &str) -> String {
    format!("{namespace}:{queue}")
}

fn backend_error(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "queue",
        source: e.to_string().into(),
    }
}

impl Transport {
    /// Connects to the configured back end and creates its tables.
    pub(crate) async fn connect(platform: &Platform, url: Option<&str>) -> Result<Self> {
        let db = platform.db();
        match url {
            None => match db.backend() {
                Backend::Sqlite => {
                    let pool = db
                        .as_sqlite()
                        .ok_or_else(|| Error::Configuration("no SQLite pool".into()))?
                        .clone();
                    // The tables only: `SqliteStorage::setup` would also turn
                    // `synchronous` off on a connection of the app's pool.
                    SqliteStorage::migrations()
                        .run(&pool)
                        .await
                        .map_err(backend_error)?;
                    Ok(Self::Sqlite(pool, QueueBackend::Sqlite))
                }
                Backend::Postgres => {
                    let pool = db
                        .as_postgres()
                        .ok_or_else(|| Error::Configuration("no PostgreSQL pool".into()))?
                        .clone();
                    PostgresStorage::setup(&pool).await.map_err(backend_error)?;
                    Ok(Self::Postgres(pool))
                }
                Backend::MySql => Err(Error::Configuration(
                    "jobs cannot be stored in MySQL/MariaDB (apalis has no MySQL back end): \
                     set PLATFORM_QUEUE_URL (or `Jobs::redis(url)`) to a Redis server \
                     (`redis://...`, the `redis` feature of platform-jobs), or to a separate \
                     SQLite file (`sqlite://jobs.db`)"
                        .into(),
                )),
            },
            Some(url) if url.starts_with("sqlite:") => {
                let opts = SqliteConnectOptions::from_str(url)
                    .map_err(|e| Error::Configuration(format!("queue URL: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts)
                    .await
                    .map_err(|e| Error::Unavailable {
                        backend: "queue",
                        source: e.to_string().into(),
                    })?;
                SqliteStorage::migrations()
                    .run(&pool)
                    .await
                    .map_err(backend_error)?;
                Ok(Self::Sqlite(pool, QueueBackend::SqliteFile))
            }
            Some(url) if url.starts_with("redis:") || url.starts_with("rediss:") => {
                #[cfg(feature = "redis")]
                {
                    let conn = apalis_redis::connect(url.to_owned()).await.map_err(|e| {
                        Error::Unavailable {
                            backend: "redis",
                            source: e.to_string().into(),
                        }
                    })?;
                    Ok(Self::Redis(conn))
                }
                #[cfg(not(feature = "redis"))]
                {
                    Err(Error::Configuration(
                        "the queue URL is a Redis URL, but platform-jobs was built without \
                         its `redis` feature"
                            .into(),
                    ))
                }
            }
            Some(other) => Err(Error::Configuration(format!(
                "the queue URL must start with redis:// or sqlite:// (got `{}`)",
                other.split(':').next().unwrap_or_default()
            ))),
        }
    }

    pub(crate) fn kind(&self) -> QueueBackend {
        match self {
            Self::Sqlite(_, k) => *k,
            Self::Postgres(_) => QueueBackend::Postgres,
            #[cfg(feature = "redis")]
            Self::Redis(_) => QueueBackend::Redis,
        }
    }

    /// The storage of `queue`, fetching `batch` jobs at a time.
    ///
    /// The apalis back ends differ in how many heartbeats a worker may
    /// miss before its jobs are taken again (SQLite 2, PostgreSQL and
    /// Redis 10); every back end gets [`MISSED_HEARTBEATS`] here.
    pub(crate) fn store(
        &self,
        namespace: &str,
        queue: &str,
        heartbeat: Duration,
        batch: usize,
    ) -> QueueStore {
        let name = apalis_queue(namespace, queue);
        match self {
            Self::Sqlite(pool, _) => QueueStore::Sqlite(
                SqliteStorage::new(pool).with_config(
                    apalis_sqlite::Config::default()
                        .queue(&name)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(MISSED_HEARTBEATS)
                        .batch_size(batch),
                ),
            ),
            Self::Postgres(pool) => QueueStore::Postgres(
                PostgresStorage::new(pool).with_config(
                    apalis_postgres::Config::default()
                        .queue(&name)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(MISSED_HEARTBEATS)
                        .batch_size(batch),
                ),
            ),
            #[cfg(feature = "redis")]
            Self::Redis(conn) => QueueStore::Redis(
                apalis_redis::RedisStorage::new(conn.clone()).with_config(
                    apalis_redis::Config::default()
                        .queue(&name)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(MISSED_HEARTBEATS)
                        .batch_size(batch),
                ),
            ),
        }
    }

    /// Checks that the back end answers.
    pub(crate) async fn ping(&self) -> std::result::Result<(), String> {
        match self {
            Self::Sqlite(pool, _) => sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Self::Postgres(pool) => sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            #[cfg(feature = "redis")]
            Self::Redis(conn) => {
                let mut c = conn.clone();
                redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Jobs waiting (due or delayed) and jobs taken by a worker, on `queue`.
    pub(crate) async fn counts(&self, namespace: &str, queue: &str) -> Result<(i64, i64)> {
        let name = apalis_queue(namespace, queue);
        let rows: Vec<(String, i64)> = match self {
            Self::Sqlite(pool, _) => sqlx::query_as(
                "SELECT status, COUNT(*) FROM Jobs WHERE job_type = ?1 \
                 AND status IN ('Pending', 'Queued', 'Running') GROUP BY status",
            )
            .bind(&name)
            .fetch_all(pool)
            .await
            .map_err(backend_error)?,
            Self::Postgres(pool) => sqlx::query_as(
                "SELECT status, COUNT(*) FROM apalis.jobs WHERE job_type = $1 \
                 AND status IN ('Pending', 'Queued', 'Running') GROUP BY status",
            )
            .bind(&name)
            .fetch_all(pool)
            .await
            .map_err(backend_error)?,
            #[cfg(feature = "redis")]
            Self::Redis(conn) => {
                let cfg = apalis_redis::Config::default().queue(&name);
                let mut c = conn.clone();
                let (active, scheduled, inflight): (i64, i64, i64) = redis::pipe()
                    .cmd("LLEN")
                    .arg(cfg.active_jobs_list())
                    .cmd("ZCARD")
                    .arg(cfg.scheduled_jobs_set())
                    .cmd("SCARD")
                    .arg(cfg.inflight_jobs_set())
                    .query_async(&mut c)
                    .await
                    .map_err(backend_error)?;
                vec![
                    ("Pending".into(), active + scheduled),
                    ("Running".into(), inflight),
                ]
            }
        };
        let mut pending = 0;
        let mut running = 0;
        for (status, n) in rows {
            if status == "Pending" {
                pending += n;
            } else {
                running += n;
            }
        }
        Ok((pending, running))
    }
}

impl QueueStore {
    /// Stores `env`, to run after `delay`.
    pub(crate) async fn push(&self, env: Envelope, delay: Duration) -> Result<()> {
        let mut b = TaskBuilder::new(env).max_attempts(1);
        if !delay.is_zero() {
            b = b.run_after(delay);
        }
        let task = b.build();
        match self.clone() {
            Self::Sqlite(mut s) => s.push_task(task).await.map_err(backend_error),
            Self::Postgres(mut s) => s.push_task(task).await.map_err(backend_error),
            #[cfg(feature = "redis")]
            Self::Redis(mut s) => s.push_task(task).await.map_err(backend_error),
        }
    }
}
