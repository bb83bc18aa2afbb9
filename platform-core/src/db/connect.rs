//! Connecting: the pools' options per back end, and errors that say what
//! to check when a server cannot be reached.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Backend, Db, DbOptions, Pool, map_sqlx_error};
use crate::error::{Error, Result};

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
            ids: Arc::default(),
        })
    }
}

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
pub(super) fn without_source_location(text: &str) -> String {
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
}
