//! Shared helpers of the cross-crate integration tests: a fresh database per
//! test on every back end that is configured.
//!
//! SQLite always runs (a temporary file). PostgreSQL and MySQL/MariaDB run
//! when `PLATFORM_TEST_POSTGRES_URL` / `PLATFORM_TEST_MYSQL_URL` are set;
//! each test then gets its own database on that server, dropped afterwards.
//! When a URL is unset the back end is skipped with a printed reason, except
//! under `CI=true`, where every URL must be set.

pub mod api;
pub mod domain;
pub mod node_jobs;
pub mod panel;
pub mod pusher;
pub mod queues;
pub mod users;
pub mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use platform_core::Platform;
use platform_core::crypto::AppKey;
use platform_core::db::{Backend, Db};
use platform_core::resource::Registry;

/// One database for one test. Dropped, it deletes itself.
#[derive(Debug)]
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Its back end.
    pub backend: Backend,
    admin_url: Option<String>,
    name: String,
    dir: Option<std::path::PathBuf>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let mut b = [0u8; 4];
    platform_core::crypto::random_bytes(&mut b);
    format!(
        "platform_t_{}_{}_{:02x}{:02x}{:02x}{:02x}",
        std::process::id(),
        n,
        b[0],
        b[1],
        b[2],
        b[3]
    )
}

/// Replaces the database name (the path) of a server URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The value of the environment variable `var`, or `None` when it is unset
/// or blank; that fails the test under `CI=true`, where nothing may be
/// skipped.
pub fn env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{var} must be set under CI=true (nothing may be skipped there)"
            );
            None
        }
    }
}

/// [`env()`] of `PLATFORM_TEST_REDIS_URL`; when it is unset, says on stderr
/// that the Redis part is skipped.
pub fn redis_url() -> Option<String> {
    let url = env("PLATFORM_TEST_REDIS_URL");
    if url.is_none() {
        eprintln!("skipping redis: PLATFORM_TEST_REDIS_URL is not set");
    }
    url
}

/// A unique tag (queue namespaces, paths, markers).
pub fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new empty directory under the system's temporary directory, its
    /// name starting with `prefix`.
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", tag()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it answers, for at most `limit`.
pub async fn wait_for<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `f` until it holds, for at most `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl TestDb {
    /// A fresh SQLite file.
    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(unique_name());
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self {
            url: format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
            backend: Backend::Sqlite,
            admin_url: None,
            name: String::new(),
            dir: Some(dir),
        }
    }

    /// A fresh database on the configured server of `backend`, or `None`
    /// (with a printed reason) when that server is not configured.
    pub async fn server(backend: Backend) -> Option<Self> {
        let var = match backend {
            Backend::Postgres => "PLATFORM_TEST_POSTGRES_URL",
            Backend::MySql => "PLATFORM_TEST_MYSQL_URL",
            Backend::Sqlite => return Some(Self::sqlite()),
        };
        let Some(admin) = env(var) else {
            eprintln!("skipping {}: {var} is not set", backend.name());
            return None;
        };
        let name = unique_name();
        let db = Db::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{var} is set but the server does not answer: {e}"));
        let create = match backend {
            Backend::Postgres => format!("CREATE DATABASE \"{name}\""),
            _ => {
                format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            }
        };
        db.execute_script(&create)
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database on {var}: {e}"));
        db.close().await;
        Some(Self {
            url: with_database(&admin, &name),
            backend,
            admin_url: Some(admin),
            name,
            dir: None,
        })
    }

    /// A platform over this database with `registry`, tables for the
    /// registry's resources created from their metadata, no background tasks
    /// and a fixed key.
    pub async fn platform(&self, registry: Registry) -> Platform {
        self.create_tables(&registry).await;
        self.another_platform(registry).await
    }

    /// A platform on this database's existing tables, without background
    /// tasks: a second process beside the one [`TestDb::platform`] started.
    pub async fn another_platform(&self, registry: Registry) -> Platform {
        Platform::builder()
            .ignore_env()
            .database_url(&self.url)
            .app_key(test_key())
            .registry(registry)
            .background_tasks(false)
            .max_connections(8)
            .build()
            .await
            .unwrap_or_else(|e| panic!("platform on {}: {e}", self.backend.name()))
    }

    /// Creates the tables of `registry`'s resources (as `make:migration`
    /// would write them), parents before children.
    pub async fn create_tables(&self, registry: &Registry) {
        let db = Db::connect(&self.url).await.expect("connect");
        Self::create_tables_on(&db, registry).await;
        db.close().await;
    }

    /// Creates the tables of `registry`'s resources on `db`, parents first.
    pub async fn create_tables_on(db: &Db, registry: &Registry) {
        let mut done: Vec<&str> = Vec::new();
        let entries: Vec<_> = registry.entries().collect();
        while done.len() < entries.len() {
            let before = done.len();
            for e in &entries {
                let m = e.meta();
                if done.contains(&m.table()) {
                    continue;
                }
                let ready = m.field_list().iter().all(|f| {
                    f.belongs_to_meta()
                        .is_none_or(|t| t.table() == m.table() || done.contains(&t.table()))
                });
                if ready {
                    let sql = platform_core::schema::create_table_sql(m, db.backend());
                    db.execute_script(&sql)
                        .await
                        .unwrap_or_else(|e| panic!("create {}: {e}\n{sql}", m.table()));
                    done.push(m.table());
                }
            }
            assert!(
                done.len() > before,
                "circular belongs_to among test resources"
            );
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(admin) = self.admin_url.take() {
            let name = std::mem::take(&mut self.name);
            let backend = self.backend;
            // Drop runs outside async context (or while unwinding): use a
            // thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(db) = Db::connect(&admin).await {
                        if backend == Backend::MySql {
                            // A connection left in a transaction would make
                            // DROP DATABASE wait for its metadata lock.
                            let mut q = db.sql();
                            q.push("SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ")
                                .bind_str(name.clone());
                            let ids = db
                                .fetch_all(q, &[platform_core::value::FieldType::I64])
                                .await
                                .unwrap_or_default();
                            for r in ids {
                                if let Some(id) = r.first().and_then(|v| v.as_i64()) {
                                    let mut k = db.sql();
                                    k.push("KILL ").int(id);
                                    let _ = db.execute(k).await;
                                }
                            }
                        }
                        let sql = match backend {
                            Backend::Postgres => {
                                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")
                            }
                            _ => format!("DROP DATABASE IF EXISTS `{name}`"),
                        };
                        let _ = db.execute_script(&sql).await;
                        db.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A fixed application key for tests.
pub fn test_key() -> AppKey {
    AppKey::parse("base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("test key")
}

/// A fresh database on every configured back end: SQLite always,
/// PostgreSQL and MySQL when their URLs are set.
pub async fn all_backends() -> Vec<TestDb> {
    let mut out = vec![TestDb::sqlite()];
    for b in [Backend::Postgres, Backend::MySql] {
        if let Some(db) = TestDb::server(b).await {
            out.push(db);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("mysql://root@h:3306", "x"),
            "mysql://root@h:3306/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}

/// The README's and the book's Rust snippets, compiled (and, unless marked
/// `no_run`, run) by `cargo test --doc`.
#[cfg(doctest)]
mod book {
    #[doc = include_str!("../../README.md")]
    mod readme {}
    #[doc = include_str!("../../book/src/introduction.md")]
    mod introduction {}
    #[doc = include_str!("../../book/src/getting-started.md")]
    mod getting_started {}
    #[doc = include_str!("../../book/src/resources.md")]
    mod resources {}
    #[doc = include_str!("../../book/src/migrations.md")]
    mod migrations {}
    #[doc = include_str!("../../book/src/audit.md")]
    mod audit {}
    #[doc = include_str!("../../book/src/api.md")]
    mod api {}
    #[doc = include_str!("../../book/src/panel.md")]
    mod panel {}
    #[doc = include_str!("../../book/src/access.md")]
    mod access {}
    #[doc = include_str!("../../book/src/authentication.md")]
    mod authentication {}
    #[doc = include_str!("../../book/src/permissions.md")]
    mod permissions {}
    #[doc = include_str!("../../book/src/cli.md")]
    mod cli {}
    #[doc = include_str!("../../book/src/jobs.md")]
    mod jobs {}
    #[doc = include_str!("../../book/src/notifications.md")]
    mod notifications {}
    #[doc = include_str!("../../book/src/storage.md")]
    mod storage {}
    #[doc = include_str!("../../book/src/media.md")]
    mod media {}
    #[doc = include_str!("../../book/src/import-export.md")]
    mod import_export {}
    #[doc = include_str!("../../book/src/broadcasting.md")]
    mod broadcasting {}
    #[doc = include_str!("../../book/src/webhooks.md")]
    mod webhooks {}
    #[doc = include_str!("../../book/src/capabilities.md")]
    mod capabilities {}
    #[doc = include_str!("../../book/src/scale-out.md")]
    mod scale_out {}
    #[doc = include_str!("../../book/src/adapters.md")]
    mod adapters {}
    #[doc = include_str!("../../book/src/configuration.md")]
    mod configuration {}
    #[doc = include_str!("../../book/src/troubleshooting.md")]
    mod troubleshooting {}
}
