//! Migrations that follow the model: a resource changes in three steps
//! (fields added, removed, renamed, retyped, made required; unique,
//! sortable, filter and search changed), `make:migration` writes each
//! change for every dialect, and `migrate` applies it on SQLite, PostgreSQL
//! and MariaDB keeping the rows.

use std::path::{Path, PathBuf};

use platform_admin::cli::{Made, MakeMigration, make_migration_with};
use platform_core::Platform;
use platform_core::context::Context;
use platform_core::db::{Backend, Db, Migration, MigrationSet};
use platform_core::query::ListQuery;
use platform_core::resource::Registry;
use platform_core::schema::{RecordedStates, live_state};
use platform_tests::{TestDb, all_backends, test_key};

mod v1 {
    use platform_core::prelude::*;

    /// A book, first version.
    #[derive(Resource, Debug, Clone)]
    #[resource(table = "books", search(title))]
    pub(crate) struct Book {
        #[resource(primary_key)]
        pub id: i64,
        #[resource(sortable, unique, max_length = 80)]
        pub title: String,
        #[resource(filter)]
        pub year: i32,
        pub notes: Option<String>,
    }
}

mod v2 {
    use platform_core::prelude::*;

    /// An author (new in this version).
    #[derive(Resource, Debug, Clone)]
    #[resource(table = "authors")]
    pub(crate) struct Author {
        #[resource(primary_key)]
        pub id: i64,
        pub name: String,
    }

    /// A book: `title` longer, `year` an `i64`, `notes` renamed `summary`
    /// (a text, searched), and `pages`, `isbn`, `author_id` new.
    #[derive(Resource, Debug, Clone)]
    #[resource(table = "books", search(title, summary))]
    pub(crate) struct Book {
        #[resource(primary_key)]
        pub id: i64,
        #[resource(sortable, unique, max_length = 200)]
        pub title: String,
        #[resource(filter)]
        pub year: i64,
        #[resource(text)]
        pub summary: Option<String>,
        pub pages: i32,
        #[resource(unique)]
        pub isbn: Option<String>,
        #[resource(belongs_to = Author)]
        pub author_id: Option<i64>,
    }
}

mod v3 {
    use platform_core::prelude::*;

    pub(crate) use super::v2::Author;

    /// A book: `isbn` gone, `title` no longer unique, `summary` required
    /// and the only searched field, `pages` sortable, `published` new.
    #[derive(Resource, Debug, Clone)]
    #[resource(table = "books", search(summary))]
    pub(crate) struct Book {
        #[resource(primary_key)]
        pub id: i64,
        #[resource(sortable, max_length = 200)]
        pub title: String,
        #[resource(filter)]
        pub year: i64,
        #[resource(text)]
        pub summary: String,
        #[resource(sortable)]
        pub pages: i32,
        #[resource(belongs_to = Author)]
        pub author_id: Option<i64>,
        pub published: Option<chrono::NaiveDate>,
    }
}

fn temp_dir(label: &str) -> PathBuf {
    let mut random = [0u8; 4];
    platform_core::crypto::random_bytes(&mut random);
    let dir = std::env::temp_dir().join(format!(
        "platform-delta-{label}-{}-{}",
        std::process::id(),
        u32::from_le_bytes(random)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The migrations under `dir`, read now (as `embed_migrations!` would at
/// compile time).
fn read_set(dir: &Path) -> MigrationSet {
    let mut dirs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    dirs.sort();
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let migrations: Vec<Migration> = dirs
        .iter()
        .map(|name| {
            let (v, rest) = name.split_once('_').unwrap();
            let read = |f: &str| leak(std::fs::read_to_string(dir.join(name).join(f)).unwrap());
            Migration {
                version: v.parse().unwrap(),
                name: leak(rest.replace('_', " ")),
                sqlite: read("sqlite.sql"),
                postgres: read("postgres.sql"),
                mysql: read("mysql.sql"),
            }
        })
        .collect();
    MigrationSet {
        name: "delta-test",
        migrations: Box::leak(migrations.into_boxed_slice()),
        backends: &[],
    }
}

/// A platform over `db` that applies the migrations under `dir` and then
/// checks the schema against `registry` (it refuses to start on drift).
async fn platform(db: &TestDb, dir: &Path, registry: Registry) -> Platform {
    Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(registry)
        .migrations(read_set(dir))
        .background_tasks(false)
        .max_connections(4)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", db.backend.name()))
}

fn make(registry: &Registry, name: &str, dir: &Path, options: &MakeMigration) -> Made {
    make_migration_with(registry, name, dir, options)
        .unwrap_or_else(|e| panic!("make:migration {name}: {e:#}"))
}

fn reg<
    F: FnOnce(platform_core::resource::RegistryBuilder) -> platform_core::resource::RegistryBuilder,
>(
    f: F,
) -> Registry {
    f(Registry::builder()).build().unwrap()
}

#[tokio::test]
async fn a_model_changed_three_times_migrates_on_every_database_keeping_its_rows() {
    for db in all_backends().await {
        let b = db.backend.name();
        let dir = temp_dir(b);
        let r1 = reg(|r| r.register::<v1::Book>());
        let r2 = reg(|r| r.register::<v2::Author>().register::<v2::Book>());
        let r3 = reg(|r| r.register::<v3::Author>().register::<v3::Book>());

        // Version 1: the table is created and filled.
        assert!(matches!(
            make(&r1, "book", &dir, &MakeMigration::default()),
            Made::Created(_)
        ));
        assert_eq!(
            make(&r1, "book", &dir, &MakeMigration::default()),
            Made::UpToDate("books".into()),
            "{b}"
        );
        let p = platform(&db, &dir, r1.clone()).await;
        let ctx = Context::system();
        let books = p.repo::<v1::Book>(&ctx);
        for (title, year, notes) in [
            ("Rust in Action", 2021, Some("systems programming")),
            ("Zero to Production", 2022, None),
            ("Deleted Later", 2023, Some("gone")),
        ] {
            books
                .create(&v1::Book {
                    id: 0,
                    title: title.into(),
                    year,
                    notes: notes.map(Into::into),
                })
                .await
                .unwrap();
        }
        let last = books.list(&ListQuery::new()).await.unwrap().items;
        let deleted_id = last.iter().map(|b| b.id).max().unwrap();
        books.delete(deleted_id).await.unwrap();
        p.shutdown().await;

        // The first migration's recorded state is removed, as if it were
        // written by hand: the change is computed from the live table.
        let recorded = RecordedStates::read(&dir).unwrap();
        let (first, _) = recorded.tables.get("books").unwrap().clone();
        std::fs::remove_file(dir.join(&first).join("schema.json")).unwrap();
        let raw = Db::connect(&db.url).await.unwrap();
        let live = live_state(&raw, r2.by_name("book").unwrap().meta())
            .await
            .unwrap()
            .expect("the table exists");
        raw.close().await;
        assert_eq!(live.search, ["title"], "{b}: {live:?}");
        assert!(live.column("title").unwrap().unique, "{b}: {live:?}");
        assert!(live.column("year").unwrap().indexed, "{b}: {live:?}");

        // A gone column and a new one of the same type: make:migration
        // will not guess.
        let no_tty = MakeMigration {
            baseline: [("books".to_owned(), live.clone())].into(),
            ..MakeMigration::default()
        };
        let err = make_migration_with(&r2, "book", &dir, &no_tty)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--rename OLD=NEW") && err.contains("`notes` -> `summary`"),
            "{b}: {err}"
        );
        // A --default that does not fit its column is refused.
        let bad = MakeMigration {
            renames: vec![("notes".into(), "summary".into())],
            defaults: [("pages".to_owned(), "many".to_owned())].into(),
            ..no_tty.clone()
        };
        let err = make_migration_with(&r2, "book", &dir, &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--default pages=many"), "{b}: {err}");

        // Version 2: authors first (books refer to them), then books.
        assert!(matches!(
            make(&r2, "author", &dir, &no_tty),
            Made::Created(_)
        ));
        let v2_options = MakeMigration {
            renames: vec![("notes".into(), "summary".into())],
            ..no_tty
        };
        let Made::Altered(path, changes) = make(&r2, "book", &dir, &v2_options) else {
            panic!("{b}: nothing written");
        };
        let mut expect = vec![
            "rename column `notes` to `summary`",
            "add column `pages`",
            "add column `isbn`",
            "add column `author_id`",
            "change column `title`: type string(80) -> string(200)",
            "add index `books_isbn_unique`",
            "search over title, summary",
        ];
        if db.backend != Backend::Sqlite {
            // SQLite's INTEGER already holds an i64.
            expect.push("change column `year`: type i32 -> i64");
        }
        for expected in expect {
            assert!(
                changes.iter().any(|c| c.starts_with(expected)),
                "{b}: {expected} not in {changes:?}"
            );
        }
        let sqlite = std::fs::read_to_string(path.join("sqlite.sql")).unwrap();
        assert!(
            sqlite.starts_with(platform_core::db::SQLITE_FOREIGN_KEYS_OFF),
            "SQLite rebuilds: {sqlite}"
        );
        let p = platform(&db, &dir, r2.clone()).await;
        let books = p.repo::<v2::Book>(&ctx);
        let all = books.list(&ListQuery::new()).await.unwrap().items;
        assert_eq!(all.len(), 2, "{b}: {all:?}");
        assert_eq!(all[0].title, "Rust in Action");
        assert_eq!(
            all[0].summary.as_deref(),
            Some("systems programming"),
            "{b}"
        );
        assert_eq!((all[0].year, all[0].pages), (2021, 0), "{b}");
        assert_eq!(all[1].summary, None, "{b}");
        let found = books
            .list(&ListQuery::new().search("systems"))
            .await
            .unwrap()
            .items;
        assert_eq!(found.len(), 1, "{b}: the search index covers summary");
        let author = p
            .repo::<v2::Author>(&ctx)
            .create(&v2::Author {
                id: 0,
                name: "Tim".into(),
            })
            .await
            .unwrap();
        let long_title = "L".repeat(150);
        let created = books
            .create(&v2::Book {
                id: 0,
                title: long_title.clone(),
                year: 3_000_000_000,
                summary: Some("a long one".into()),
                pages: 10,
                isbn: Some("978-1".into()),
                author_id: Some(author.id),
            })
            .await
            .unwrap();
        assert!(
            created.id > deleted_id,
            "{b}: id {} reused (deleted {deleted_id})",
            created.id
        );
        let twin = v2::Book {
            id: 0,
            title: "Another".into(),
            year: 2024,
            summary: None,
            pages: 1,
            isbn: Some("978-1".into()),
            author_id: None,
        };
        assert!(books.create(&twin).await.is_err(), "{b}: isbn is unique");
        let orphan = v2::Book {
            isbn: None,
            author_id: Some(author.id + 1000),
            ..twin.clone()
        };
        assert!(
            books.create(&orphan).await.is_err(),
            "{b}: author_id is a foreign key"
        );
        p.shutdown().await;

        // Version 3: existing rows get the value given for the field that
        // becomes required.
        let v3_options = MakeMigration {
            no_rename: true,
            defaults: [("summary".to_owned(), "none yet".to_owned())].into(),
            ..MakeMigration::default()
        };
        let Made::Altered(_, changes) = make(&r3, "book", &dir, &v3_options) else {
            panic!("{b}: nothing written");
        };
        for expected in [
            "drop column `isbn`",
            "add column `published`",
            "change column `summary`: now required",
            "drop index `books_title_unique`",
            "add index `books_title_idx`",
            "add index `books_pages_idx`",
            "search over summary",
        ] {
            assert!(
                changes.iter().any(|c| c.starts_with(expected)),
                "{b}: {expected} not in {changes:?}"
            );
        }
        assert_eq!(
            make(&r3, "book", &dir, &v3_options),
            Made::UpToDate("books".into())
        );
        let p = platform(&db, &dir, r3.clone()).await;
        let books = p.repo::<v3::Book>(&ctx);
        let all = books.list(&ListQuery::new()).await.unwrap().items;
        assert_eq!(all.len(), 3, "{b}: {all:?}");
        assert_eq!(all[1].summary, "none yet", "{b}");
        assert_eq!(all[2].title, long_title, "{b}");
        assert_eq!(all[2].year, 3_000_000_000, "{b}");
        assert_eq!(all[2].author_id, Some(author.id), "{b}");
        // The title is no longer unique, nor searched.
        books
            .create(&v3::Book {
                id: 0,
                title: "Rust in Action".into(),
                year: 2025,
                summary: "second edition".into(),
                pages: 400,
                author_id: None,
                published: chrono::NaiveDate::from_ymd_opt(2025, 1, 31),
            })
            .await
            .unwrap();
        let by_title = books
            .list(&ListQuery::new().search("Zero to"))
            .await
            .unwrap();
        assert!(
            by_title.items.is_empty(),
            "{b}: title is not searched any more"
        );
        let by_summary = books
            .list(&ListQuery::new().search("edition"))
            .await
            .unwrap();
        assert_eq!(by_summary.items.len(), 1, "{b}");
        let raw = Db::connect(&db.url).await.unwrap();
        let live = live_state(&raw, r3.by_name("book").unwrap().meta())
            .await
            .unwrap()
            .unwrap();
        raw.close().await;
        assert!(live.column("isbn").is_none(), "{b}: {live:?}");
        assert!(live.column("pages").unwrap().indexed, "{b}: {live:?}");
        p.shutdown().await;
        if db.backend == Backend::Sqlite {
            // Every dialect's scripts were written.
            let recorded = RecordedStates::read(&dir).unwrap();
            assert_eq!(recorded.next_version, 5);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn an_application_for_sqlite_only_gets_only_sqlite_scripts() {
    let dir = temp_dir("dialects");
    let r1 = reg(|r| r.register::<v1::Book>());
    let options = MakeMigration {
        dialects: vec![Backend::Sqlite],
        ..MakeMigration::default()
    };
    let Made::Created(path) = make(&r1, "books", &dir, &options) else {
        panic!("nothing written");
    };
    assert!(path.join("sqlite.sql").is_file());
    assert!(path.join("schema.json").is_file());
    assert!(!path.join("postgres.sql").exists());
    assert!(!path.join("mysql.sql").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
