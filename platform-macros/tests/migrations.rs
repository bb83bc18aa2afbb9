//! `embed_migrations!` over `tests/migrations/`.

use platform_core::db::{Backend, MigrationSet};

const MIGRATIONS: MigrationSet = platform_core::embed_migrations!("tests/migrations");

#[test]
fn embeds_every_migration_in_version_order() {
    assert_eq!(MIGRATIONS.name, "platform-macros");
    let list: Vec<(i64, &str)> = MIGRATIONS
        .migrations
        .iter()
        .map(|m| (m.version, m.name))
        .collect();
    assert_eq!(list, [(1, "create customers"), (2, "add customer notes")]);
    let first = &MIGRATIONS.migrations[0];
    assert_eq!(
        first.sql(Backend::Postgres),
        include_str!("migrations/0001_create_customers/postgres.sql")
    );
    assert!(first.sqlite.contains("AUTOINCREMENT"));
    assert!(first.mysql.contains("AUTO_INCREMENT"));
}

#[tokio::test]
async fn runs_on_sqlite() {
    let db = platform_core::db::Db::connect("sqlite::memory:")
        .await
        .unwrap();
    assert_eq!(MIGRATIONS.run(&db).await.unwrap(), 2);
    assert!(MIGRATIONS.pending(&db).await.unwrap().is_empty());
}

/// An application for SQLite only writes only `sqlite.sql`.
const SQLITE_ONLY: MigrationSet =
    platform_core::embed_migrations!("tests/migrations_sqlite_only", dialects = [sqlite]);

#[tokio::test]
async fn an_sqlite_only_set_needs_only_sqlite_scripts() {
    assert_eq!(SQLITE_ONLY.backends, [Backend::Sqlite]);
    let m = &SQLITE_ONLY.migrations[0];
    assert!(m.sqlite.contains("CREATE TABLE notes"));
    assert_eq!((m.postgres, m.mysql), ("", ""));
    assert!(SQLITE_ONLY.supports(Backend::Sqlite));
    assert!(!SQLITE_ONLY.supports(Backend::Postgres));
    let db = platform_core::db::Db::connect("sqlite::memory:")
        .await
        .unwrap();
    assert_eq!(SQLITE_ONLY.run(&db).await.unwrap(), 1);
    // The same scripts claimed for PostgreSQL only are refused on SQLite,
    // naming what is missing.
    let postgres_only = MigrationSet {
        backends: &[Backend::Postgres],
        ..SQLITE_ONLY
    };
    let err = postgres_only.run(&db).await.unwrap_err().to_string();
    assert!(
        err.contains("written for PostgreSQL only, and this database is SQLite")
            && err.contains("sqlite.sql"),
        "{err}"
    );
}
