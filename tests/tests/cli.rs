//! The command line a host binary gets, run as a real process on every
//! configured database: exit codes, output, and what each command changes.

use std::process::{Command, Output};
use std::time::Duration;

use platform_core::db::{Db, Sql};
use platform_tests::{TestDb, all_backends, test_key};

const EXE: &str = env!("CARGO_BIN_EXE_cli_app");

fn run(db: &TestDb, args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env("PLATFORM_DATABASE_URL", &db.url)
        .env("PLATFORM_APP_KEY", test_key().to_config_string())
        .env("RUST_BACKTRACE", "0")
        .env_remove("PLATFORM_ENV")
        .output()
        .expect("run cli_app")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_every_command() {
    let o = Command::new(EXE).arg("--help").output().unwrap();
    assert!(o.status.success());
    let text = stdout(&o);
    for c in [
        "serve",
        "migrate",
        "user:create",
        "token:create",
        "permissions:sync",
        "audit:verify",
        "audit:prune",
        "make:migration",
        "key:generate",
        "health",
    ] {
        assert!(text.contains(c), "{c} missing from --help:\n{text}");
    }
    let o = Command::new(EXE)
        .args(["token:create", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("--expires-in"));
    let o = Command::new(EXE).arg("no:such").output().unwrap();
    assert!(!o.status.success());
}

#[test]
fn make_migration_writes_three_scripts_and_refuses_to_repeat() {
    let dir = std::env::temp_dir().join(format!("platform-mk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = TestDb::sqlite();
    let d = dir.to_str().unwrap();
    let o = run(&db, &["make:migration", "invoices", "--dir", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written = dir.join("0001_create_invoices");
    for f in ["sqlite.sql", "postgres.sql", "mysql.sql"] {
        let sql = std::fs::read_to_string(written.join(f)).unwrap();
        assert!(sql.contains("CREATE TABLE"), "{f}");
    }
    assert!(
        std::fs::read_to_string(written.join("postgres.sql"))
            .unwrap()
            .contains("gin_trgm_ops")
    );
    let again = run(&db, &["make:migration", "invoice", "--dir", d]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already has a migration"),
        "{}",
        stderr(&again)
    );
    let unknown = run(&db, &["make:migration", "widgets", "--dir", d]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no resource `widgets`"),
        "{}",
        stderr(&unknown)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn migrate_users_tokens_and_audit_verify() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let o = run(&db, &["migrate"]);
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("platform: applied ")
                && !stdout(&o).contains("platform: applied 0"),
            "{}",
            stdout(&o)
        );
        let o = run(&db, &["migrate", "--status"]);
        assert!(stdout(&o).contains("platform: 0 pending"), "{}", stdout(&o));

        let o = run(
            &db,
            &[
                "user:create",
                "--email",
                "root@example.com",
                "--role",
                "super_admin",
            ],
        );
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("password: "),
            "a generated password is printed"
        );
        let o = run(
            &db,
            &[
                "user:create",
                "--email",
                "root@example.com",
                "--password",
                "long enough pw",
            ],
        );
        assert!(!o.status.success(), "duplicate e-mail");
        assert!(
            stderr(&o).contains("email has already been taken"),
            "{}",
            stderr(&o)
        );

        let o = run(
            &db,
            &[
                "token:create",
                "--email",
                "root@example.com",
                "--abilities",
                "view_any_invoice,view_invoice",
                "--expires-in",
                "30d",
            ],
        );
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        let token = stdout(&o);
        assert_eq!(token.lines().count(), 1, "the token alone: {token:?}");
        assert!(token.trim().starts_with("plt_"));
        let o = run(&db, &["token:create", "--email", "nobody@example.com"]);
        assert!(!o.status.success());
        let o = run(
            &db,
            &[
                "token:create",
                "--email",
                "root@example.com",
                "--expires-in",
                "soon",
            ],
        );
        assert!(!o.status.success());

        let o = run(&db, &["health"]);
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        assert!(stdout(&o).contains("database: ok"));

        let o = run(&db, &["permissions:sync"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("0 new permissions"), "{}", stdout(&o));

        let o = run(&db, &["audit:verify"]);
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        assert!(stdout(&o).contains("audit trail intact"), "{}", stdout(&o));

        // Tamper with the trail: verify fails and names the entry.
        let raw = Db::connect(&db.url).await.unwrap();
        raw.execute(Sql::literal(
            raw.backend(),
            "UPDATE platform_audits SET actor_type = 'system' WHERE seq = 1",
        ))
        .await
        .unwrap();
        raw.close().await;
        let o = run(&db, &["audit:verify"]);
        assert!(!o.status.success(), "{backend}: a broken chain must fail");
        let err = stderr(&o);
        assert!(
            err.contains("BROKEN at entry seq 1") && err.contains("altered"),
            "{err}"
        );
    }
}

#[test]
fn health_fails_when_the_database_does_not_answer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = Command::new(EXE)
        .arg("health")
        .env(
            "PLATFORM_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/x"),
        )
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("database: FAIL"), "{}", stderr(&o));
}

#[tokio::test]
async fn serve_answers_and_stops_cleanly() {
    let db = TestDb::sqlite();
    assert!(
        run(
            &db,
            &[
                "user:create",
                "--email",
                "a@example.com",
                "--role",
                "super_admin"
            ]
        )
        .status
        .success()
    );
    let token = stdout(&run(&db, &["token:create", "--email", "a@example.com"]))
        .trim()
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(EXE)
        .args(["serve", "--addr", &addr])
        .env("PLATFORM_DATABASE_URL", &db.url)
        .env("PLATFORM_APP_KEY", test_key().to_config_string())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "serve did not listen on {addr}");
    let get = |path: &str, auth: bool| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let auth = if auth {
            format!("Authorization: Bearer {token}\r\n")
        } else {
            String::new()
        };
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(get("/health", false).starts_with("HTTP/1.1 200"));
    assert!(get("/api/tasks", false).starts_with("HTTP/1.1 401"));
    let tasks = get("/api/tasks", true);
    assert!(tasks.starts_with("HTTP/1.1 200"), "{tasks}");
    assert!(get("/api/openapi.json", false).contains("\"openapi\""));
    // SIGTERM: a graceful stop.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
}
