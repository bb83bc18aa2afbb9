//! Failures of the database server: a connection killed in the middle of a
//! write, a server that does not answer, schema drift at start-up.

use std::time::Duration;

use platform_core::context::Context;
use platform_core::db::{Backend, Db, Sql};
use platform_core::error::Error;
use platform_core::value::FieldType;
use platform_core::{Platform, Resource};
use platform_tests::domain::{Customer, Invoice, customer, invoice, registry};
use platform_tests::{TestDb, all_backends, test_key};

/// The connection running a write is killed while the write waits for the
/// audit table: the caller gets `Unavailable` (503), and neither the row nor
/// its audit entry exists.
#[tokio::test]
async fn a_connection_killed_mid_write_leaves_nothing_half_written() {
    for backend in [Backend::Postgres, Backend::MySql] {
        let Some(db) = TestDb::server(backend).await else {
            continue;
        };
        let name = backend.name();
        let p = db.platform(registry()).await;
        let c = p
            .repo::<Customer>(&Context::system())
            .create(&customer("Kim", "kim@example.com", "KR"))
            .await
            .unwrap();
        let audits_before = count(&p, "SELECT COUNT(*) FROM platform_audits").await;

        // Another session holds the audit table, so the write blocks there,
        // after its row is inserted.
        let admin = Db::connect(&db.url).await.unwrap();
        let mut locker = admin.begin().await.unwrap();
        let lock = match backend {
            Backend::Postgres => "LOCK TABLE platform_audits IN ACCESS EXCLUSIVE MODE",
            _ => "SELECT COUNT(*) FROM platform_audits FOR UPDATE",
        };
        locker.execute(Sql::literal(backend, lock)).await.unwrap();

        let writer = {
            let p = p.clone();
            tokio::spawn(async move {
                p.repo::<Invoice>(&Context::system())
                    .create(&invoice(c.id, 1, "draft", 100))
                    .await
            })
        };
        // Find the blocked session and kill it.
        let find = match backend {
            Backend::Postgres => {
                "SELECT CAST(pid AS BIGINT) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND query LIKE '%INSERT INTO platform_audits%'"
            }
            _ => {
                "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE 'INSERT INTO platform_audits%'"
            }
        };
        let mut victim = None;
        for _ in 0..100 {
            victim = admin.fetch_i64(Sql::literal(backend, find)).await.unwrap();
            if victim.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let victim =
            victim.unwrap_or_else(|| panic!("{name}: the write never blocked on the audit table"));
        end_session(&admin, victim).await.unwrap();
        let result = tokio::time::timeout(Duration::from_secs(20), writer)
            .await
            .expect("the write returned")
            .unwrap();
        locker.rollback().await.unwrap();
        assert!(
            matches!(result, Err(Error::Unavailable { .. })),
            "{name}: expected Unavailable, got {result:?}"
        );
        assert_eq!(
            count(&p, "SELECT COUNT(*) FROM invoices").await,
            0,
            "{name}: half-written row"
        );
        assert_eq!(
            count(&p, "SELECT COUNT(*) FROM platform_audits").await,
            audits_before,
            "{name}"
        );
        // The platform recovers: the next write works.
        p.repo::<Invoice>(&Context::system())
            .create(&invoice(c.id, 2, "draft", 100))
            .await
            .unwrap();
        admin.close().await;
    }
}

/// Ends the server session `id` (PostgreSQL's backend pid, MariaDB's
/// connection id) from `admin`'s.
async fn end_session(admin: &Db, id: i64) -> platform_core::Result<()> {
    let mut kill = admin.sql();
    if admin.backend() == Backend::Postgres {
        kill.push("SELECT pg_terminate_backend(CAST(")
            .bind_i64(id)
            .push(" AS INT))");
        admin.fetch_optional(kill, &[]).await?;
    } else {
        kill.push("KILL ").int(id);
        admin.execute(kill).await?;
    }
    Ok(())
}

async fn count(p: &Platform, sql: &'static str) -> i64 {
    p.db()
        .fetch_i64(Sql::literal(p.db().backend(), sql))
        .await
        .unwrap()
        .unwrap_or(0)
}

/// A server that does not answer is `Unavailable`, quickly, never a hang.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/x"),
        format!("mysql://root@127.0.0.1:{port}/x"),
    ] {
        let started = std::time::Instant::now();
        let err = Platform::builder()
            .ignore_env()
            .database_url(&url)
            .app_key(test_key())
            .acquire_timeout(Duration::from_secs(2))
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{url}: {err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{url}: took {:?}",
            started.elapsed()
        );
    }
}

/// The platform refuses to start when the live schema has drifted from the
/// metadata, and names the resource and field.
#[tokio::test]
async fn schema_drift_is_refused_naming_resource_and_field() {
    for db in all_backends().await {
        let name = db.backend.name();
        db.create_tables(&registry()).await;
        let raw = Db::connect(&db.url).await.unwrap();
        let (drop_col, retype) = match db.backend {
            Backend::Sqlite => (
                "DROP INDEX tasks_done_idx; ALTER TABLE tasks DROP COLUMN done",
                "ALTER TABLE customers ADD COLUMN x TEXT",
            ),
            Backend::Postgres => (
                "ALTER TABLE tasks DROP COLUMN done",
                "ALTER TABLE customers ALTER COLUMN country TYPE VARCHAR(1)",
            ),
            Backend::MySql => (
                "ALTER TABLE tasks DROP COLUMN done",
                "ALTER TABLE customers MODIFY COLUMN country VARCHAR(1) NOT NULL; \
                 ALTER TABLE notes MODIFY COLUMN id BIGINT NOT NULL, DROP PRIMARY KEY",
            ),
        };
        raw.execute_script(drop_col).await.unwrap();
        raw.execute_script(retype).await.unwrap();
        raw.execute_script("DROP TABLE invoices_search").await.ok();
        raw.close().await;
        let err = Platform::builder()
            .ignore_env()
            .database_url(&db.url)
            .app_key(test_key())
            .registry(registry())
            .build()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Configuration(_)), "{name}: {err:?}");
        assert!(
            text.contains("resource `task`, field `done`: column `tasks.done` is missing"),
            "{name}: {text}"
        );
        if db.backend != Backend::Sqlite {
            assert!(
                text.contains("resource `customer`, field `country`"),
                "{name}: {text}"
            );
        }
        if db.backend == Backend::MySql {
            assert!(
                text.contains("resource `note`: table `notes` has no primary key"),
                "{name}: {text}"
            );
        }
        assert_eq!(Invoice::meta().table(), "invoices");
    }
}

/// A failed first connection says what to check, with the URL's password
/// masked and without the driver's or server's source locations; a
/// refused port is reported at once, not after the pool's timeout.
#[tokio::test]
async fn connection_errors_say_what_to_check() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for scheme in ["postgres", "postgresql", "mysql", "mariadb"] {
        let url = format!("{scheme}://app:s3cret-pw@127.0.0.1:{port}/x");
        let started = std::time::Instant::now();
        let err = Db::connect(&url).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::Unavailable { .. }),
            "{scheme}: {err:?}"
        );
        for says in [
            &format!("127.0.0.1:{port}") as &str,
            "connection refused",
            "server is running",
            "host and port",
            "app:***@",
        ] {
            assert!(
                text.contains(says),
                "{scheme}: `{says}` missing from {text}"
            );
        }
        assert!(!text.contains("s3cret-pw"), "{scheme}: {text}");
        assert!(!text.contains("::") && !text.contains("os error"), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{scheme}: took {:?}",
            started.elapsed()
        );
    }

    let missing = std::env::temp_dir().join(format!("platform-no-dir-{}", std::process::id()));
    let err = Db::connect(&format!("sqlite://{}/app.db?mode=rwc", missing.display()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Configuration(_)), "{err:?}");
    assert!(err.to_string().contains("folder exists"), "{err}");

    // A database name the server does not know.
    for var in ["PLATFORM_TEST_POSTGRES_URL", "PLATFORM_TEST_MYSQL_URL"] {
        let Ok(base) = std::env::var(var) else {
            eprintln!("skipping the wrong database name on {var}: not set");
            continue;
        };
        let cut = base.rfind('/').expect("a database in the URL");
        let url = format!("{}/platform_no_such_database", &base[..cut]);
        let err = Db::connect(&url).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Configuration(_)), "{var}: {err:?}");
        for says in [
            "`platform_no_such_database` does not exist",
            "CREATE DATABASE platform_no_such_database",
            "PLATFORM_DATABASE_URL",
        ] {
            assert!(text.contains(says), "{var}: `{says}` missing from {text}");
        }
        assert!(!text.contains(" line ") && !text.contains("::"), "{text}");
    }
}

/// Connections the server dropped while they sat idle in the pool (a
/// restart, an idle timeout) are found by the ping before use and
/// replaced: no request fails.
#[tokio::test]
async fn connections_dropped_while_idle_are_replaced_before_use() {
    for backend in [Backend::Postgres, Backend::MySql] {
        let Some(db) = TestDb::server(backend).await else {
            continue;
        };
        let name = backend.name();
        let p = db.platform(registry()).await;
        let customers = p.repo::<Customer>(&Context::system());
        let c = customers
            .create(&customer("Ivo", "ivo@example.com", "HR"))
            .await
            .unwrap();
        // The server ends every other session of this database.
        let admin = Db::connect(&db.url).await.unwrap();
        let others = match backend {
            Backend::Postgres => {
                "SELECT CAST(pid AS BIGINT) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            }
            _ => {
                "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
            }
        };
        let victims = admin
            .fetch_all(Sql::literal(backend, others), &[FieldType::I64])
            .await
            .unwrap();
        assert!(!victims.is_empty(), "{name}: the pool holds connections");
        for v in victims {
            // A session gone already (closed by its pool meanwhile) is
            // refused by MariaDB's KILL: not an error here.
            let _ = end_session(&admin, v[0].as_i64().unwrap()).await;
        }
        // Idle for longer than the pool's bypass window: every connection
        // is pinged before use, and the dead ones are replaced.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        for n in 0..6 {
            customers
                .find(c.id)
                .await
                .unwrap_or_else(|e| panic!("{name}: read {n} failed: {e:?}"));
            p.repo::<Invoice>(&Context::system())
                .create(&invoice(c.id, n + 1, "draft", 100))
                .await
                .unwrap_or_else(|e| panic!("{name}: write {n} failed: {e:?}"));
        }
        admin.close().await;
    }
}

/// Two transactions that lock two rows in opposite order: the server
/// breaks the deadlock by rolling one back, and that error says so
/// ([`Error::is_deadlock`], which an import uses to write its chunk again
/// row by row), while other errors do not.
#[tokio::test]
async fn a_deadlock_is_recognised() {
    for backend in [Backend::Postgres, Backend::MySql] {
        let Some(db) = TestDb::server(backend).await else {
            continue;
        };
        let name = backend.name();
        let p = db.platform(registry()).await;
        let console = Context::system();
        let a = p
            .repo::<Customer>(&console)
            .create(&customer("Ada", "ada@example.com", "GB"))
            .await
            .unwrap();
        let b = p
            .repo::<Customer>(&console)
            .create(&customer("Bo", "bo@example.com", "SE"))
            .await
            .unwrap();
        let touch = move |id: i64| {
            let mut q = Sql::new(backend);
            q.push("UPDATE customers SET name = name WHERE id = ")
                .bind_i64(id);
            q
        };
        let d = p.db().clone();
        let mut first = d.begin().await.unwrap();
        first.execute(touch(a.id)).await.unwrap();
        let mut second = d.begin().await.unwrap();
        second.execute(touch(b.id)).await.unwrap();
        // The first waits for the second's row; once it waits, the second
        // asks for the first's row.
        let waiting = tokio::spawn(async move {
            let r = first.execute(touch(b.id)).await;
            (first, r)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r2 = second.execute(touch(a.id)).await;
        let (first, r1) = waiting.await.unwrap();
        let errors: Vec<&Error> = [&r1, &r2]
            .into_iter()
            .filter_map(|r| r.as_ref().err())
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "{name}: one of the two yields: {r1:?} {r2:?}"
        );
        assert!(errors[0].is_deadlock(), "{name}: {:?}", errors[0]);
        drop(first);
        drop(second);
        let other = p
            .db()
            .execute(Sql::literal(backend, "SELECT * FROM no_such_table"))
            .await
            .unwrap_err();
        assert!(!other.is_deadlock(), "{name}: {other:?}");
        assert!(!Error::Unauthenticated.is_deadlock());
    }
}
