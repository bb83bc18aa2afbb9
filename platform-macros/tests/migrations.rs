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
