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
        .env_remove("PLATFORM_USER_PASSWORD")
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
        "role:create",
        "role:grant",
        "role:revoke",
        "role:list",
        "permissions:sync",
        "permissions:matrix",
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
fn make_migration_writes_three_scripts_and_a_state_and_knows_when_it_is_up_to_date() {
    let dir = std::env::temp_dir().join(format!("platform-mk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = TestDb::sqlite();
    let d = dir.to_str().unwrap();
    let o = run(&db, &["make:migration", "customers", "--dir", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&db, &["make:migration", "invoices", "--dir", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written = dir.join("0002_create_invoices");
    for f in ["sqlite.sql", "postgres.sql", "mysql.sql"] {
        let sql = std::fs::read_to_string(written.join(f)).unwrap();
        assert!(sql.contains("CREATE TABLE"), "{f}");
    }
    assert!(
        std::fs::read_to_string(written.join("postgres.sql"))
            .unwrap()
            .contains("gin_trgm_ops")
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(written.join("schema.json")).unwrap())
            .unwrap();
    assert_eq!(state["tables"]["invoices"]["table"], "invoices", "{state}");
    let again = run(&db, &["make:migration", "invoice", "--dir", d]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("`invoices` is up to date: nothing to write"),
        "{}",
        stdout(&again)
    );
    let unknown = run(&db, &["make:migration", "widgets", "--dir", d]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no resource `widgets`"),
        "{}",
        stderr(&unknown)
    );
    let bad = run(
        &db,
        &["make:migration", "invoice", "--rename", "x", "--dir", d],
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("--rename x: expected KEY=VALUE"),
        "{}",
        stderr(&bad)
    );
    let neither = run(&db, &["make:migration", "--dir", d]);
    assert!(!neither.status.success(), "a resource or --all is needed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The version of the migration named `name` under `dir`.
fn version_of(dir: &std::path::Path, name: &str) -> u32 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            let (v, rest) = n.split_once('_')?;
            (rest == name).then(|| v.parse().unwrap())
        })
        .next()
        .unwrap_or_else(|| panic!("no {name} in {}", dir.display()))
}

#[tokio::test]
async fn make_migration_all_and_migrate_check() {
    for db in all_backends().await {
        let b = db.backend.name();
        let dir = std::env::temp_dir().join(format!("platform-mk-all-{}-{b}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.to_str().unwrap();

        // Every resource, each table after the tables it refers to.
        let o = run(&db, &["make:migration", "--all", "--dir", d]);
        assert!(o.status.success(), "{b}: {}", stderr(&o));
        assert_eq!(stdout(&o).matches("wrote ").count(), 4, "{}", stdout(&o));
        assert!(version_of(&dir, "create_customers") < version_of(&dir, "create_invoices"));
        let o = run(&db, &["make:migration", "--all", "--dir", d]);
        assert!(
            stdout(&o).contains("every resource is up to date"),
            "{}",
            stdout(&o)
        );

        // --check on a database that has not been migrated fails and
        // changes nothing.
        let o = run(&db, &["migrate", "--check", "--dir", d]);
        assert!(!o.status.success(), "{b}");
        assert!(stderr(&o).contains("pending"), "{b}: {}", stderr(&o));
        let o = run(&db, &["migrate", "--status"]);
        assert!(
            !stdout(&o).contains(": 0 pending"),
            "{b}: --check applied something: {}",
            stdout(&o)
        );

        // Migrated, and the recorded states match the resources: it passes.
        let o = run(&db, &["migrate"]);
        assert!(o.status.success(), "{b}: {}", stderr(&o));
        let o = run(&db, &["migrate", "--check", "--dir", d]);
        assert!(o.status.success(), "{b}: {}{}", stdout(&o), stderr(&o));

        // A rename that no table has is refused, not ignored.
        let o = run(
            &db,
            &[
                "make:migration",
                "--all",
                "--rename",
                "nosuch=x",
                "--dir",
                d,
            ],
        );
        assert!(!o.status.success(), "{b}");
        assert!(
            stderr(&o).contains("no table's last migration has a column `nosuch`"),
            "{b}: {}",
            stderr(&o)
        );

        // A resource that changed since its last migration fails the check,
        // and make:migration writes the change.
        let state_file = dir
            .join(format!(
                "{:04}_create_customers",
                version_of(&dir, "create_customers")
            ))
            .join("schema.json");
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
        let columns = state["tables"]["customers"]["columns"]
            .as_array_mut()
            .unwrap();
        let gone = columns.pop().unwrap();
        std::fs::write(&state_file, state.to_string()).unwrap();
        let o = run(&db, &["migrate", "--check", "--dir", d]);
        assert!(!o.status.success(), "{b}");
        assert!(
            stderr(&o).contains("resource `customer` changed since its last migration"),
            "{b}: {}",
            stderr(&o)
        );
        let o = run(&db, &["make:migration", "customer", "--dir", d]);
        assert!(o.status.success(), "{b}: {}", stderr(&o));
        assert!(
            stdout(&o).contains(&format!("add column `{}`", gone["name"].as_str().unwrap())),
            "{}",
            stdout(&o)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
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
            "UPDATE platform_audits SET actor_type = 'system' WHERE id = (SELECT audit_id FROM platform_audit_seals WHERE seq = 1)",
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

/// Counts rows with a fixed query.
async fn count(raw: &Db, sql: &'static str) -> i64 {
    raw.fetch_i64(Sql::literal(raw.backend(), sql))
        .await
        .unwrap()
        .unwrap_or(0)
}

/// What a failing command must leave as it was: users, their roles, roles,
/// role grants, tokens and audit entries.
async fn snapshot(raw: &Db) -> [i64; 6] {
    [
        count(raw, "SELECT COUNT(*) FROM platform_users").await,
        count(raw, "SELECT COUNT(*) FROM platform_user_roles").await,
        count(raw, "SELECT COUNT(*) FROM platform_roles").await,
        count(raw, "SELECT COUNT(*) FROM platform_role_permissions").await,
        count(raw, "SELECT COUNT(*) FROM platform_api_tokens").await,
        count(raw, "SELECT COUNT(*) FROM platform_audits").await,
    ]
}

/// A trigger refusing every insert into `table`, so a write fails inside
/// the command's transaction, after its first rows were written.
async fn refuse_inserts(raw: &Db, table: &str) {
    let script = match raw.backend() {
        platform_core::db::Backend::Sqlite => format!(
            "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ),
        platform_core::db::Backend::Postgres => format!(
            "CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
             CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
        ),
        platform_core::db::Backend::MySql => format!(
            "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'"
        ),
    };
    raw.execute_script(&script).await.unwrap();
}

async fn drop_refusal(raw: &Db, table: &str) {
    let script = match raw.backend() {
        platform_core::db::Backend::Postgres => {
            format!("DROP TRIGGER refuse_{table} ON {table}; DROP FUNCTION refuse_{table}()")
        }
        _ => format!("DROP TRIGGER refuse_{table}"),
    };
    raw.execute_script(&script).await.unwrap();
}

#[tokio::test]
async fn a_failing_user_create_leaves_no_user_behind() {
    for db in all_backends().await {
        let backend = db.backend.name();
        assert!(run(&db, &["migrate"]).status.success());
        // Creates the permissions and super_admin.
        assert!(run(&db, &["permissions:sync"]).status.success());
        let raw = Db::connect(&db.url).await.unwrap();
        let before = snapshot(&raw).await;

        // An unknown role among known ones: refused, named, nothing written.
        let o = run(
            &db,
            &[
                "user:create",
                "--email",
                "half@example.com",
                "--password",
                "long enough pw",
                "--role",
                "super_admin",
                "--role",
                "no_such_role",
            ],
        );
        assert!(!o.status.success(), "{backend}: an unknown role must fail");
        assert!(
            stderr(&o).contains("`no_such_role` is not a role"),
            "{backend}: {}",
            stderr(&o)
        );
        assert_eq!(snapshot(&raw).await, before, "{backend}: nothing written");

        // A failure inside the transaction, after the user row was written
        // (the role grant is refused by the database): still nothing.
        refuse_inserts(&raw, "platform_user_roles").await;
        let o = run(
            &db,
            &[
                "user:create",
                "--email",
                "half@example.com",
                "--password",
                "long enough pw",
                "--role",
                "super_admin",
            ],
        );
        assert!(
            !o.status.success(),
            "{backend}: the refused grant must fail"
        );
        assert_eq!(
            snapshot(&raw).await,
            before,
            "{backend}: the user was left behind: {}",
            stderr(&o)
        );
        drop_refusal(&raw, "platform_user_roles").await;

        // The same command now works whole: the user, its role, two entries.
        let o = run(
            &db,
            &[
                "user:create",
                "--email",
                "half@example.com",
                "--password",
                "long enough pw",
                "--role",
                "super_admin",
            ],
        );
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        let after = snapshot(&raw).await;
        assert_eq!(after[0], before[0] + 1, "{backend}: one user");
        assert_eq!(after[1], before[1] + 1, "{backend}: one role membership");
        assert_eq!(
            after[5],
            before[5] + 2,
            "{backend}: created + role_assigned"
        );

        // token:create with an unknown ability writes nothing either.
        let before = snapshot(&raw).await;
        let o = run(
            &db,
            &[
                "token:create",
                "--email",
                "half@example.com",
                "--abilities",
                "view_invoice,no_such_ability",
            ],
        );
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("`no_such_ability` is not a permission"),
            "{backend}: {}",
            stderr(&o)
        );
        assert_eq!(snapshot(&raw).await, before, "{backend}: no token");
        raw.close().await;
    }
}

#[tokio::test]
async fn roles_from_the_command_line_all_or_nothing_and_audited() {
    for db in all_backends().await {
        let backend = db.backend.name();
        assert!(run(&db, &["migrate"]).status.success());
        assert!(run(&db, &["permissions:sync"]).status.success());
        let raw = Db::connect(&db.url).await.unwrap();
        let list = |db: &TestDb| {
            let o = run(db, &["role:list"]);
            assert!(o.status.success(), "{}", stderr(&o));
            stdout(&o)
        };

        // Unknown permissions are named, and no role is created.
        let before = snapshot(&raw).await;
        let o = run(
            &db,
            &[
                "role:create",
                "viewer",
                "--permission",
                "view_any_invoice",
                "--permission",
                "view_nothing,fly_invoice",
            ],
        );
        assert!(!o.status.success(), "{backend}");
        let err = stderr(&o);
        assert!(
            err.contains("`view_nothing`") && err.contains("`fly_invoice`"),
            "{backend}: {err}"
        );
        assert_eq!(snapshot(&raw).await, before, "{backend}: nothing written");
        assert!(!list(&db).contains("viewer"));

        // A failure inside the transaction (the grant rows are refused):
        // the role is not left behind.
        refuse_inserts(&raw, "platform_role_permissions").await;
        let o = run(
            &db,
            &["role:create", "viewer", "--permission", "view_any_invoice"],
        );
        assert!(
            !o.status.success(),
            "{backend}: the refused grant must fail"
        );
        assert_eq!(snapshot(&raw).await, before, "{backend}: {}", stderr(&o));
        drop_refusal(&raw, "platform_role_permissions").await;

        let o = run(
            &db,
            &[
                "role:create",
                "viewer",
                "--permission",
                "view_any_invoice",
                "--permission",
                "view_invoice",
            ],
        );
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        assert!(
            list(&db).contains("viewer: view_any_invoice, view_invoice"),
            "{backend}: {}",
            list(&db)
        );
        let o = run(&db, &["role:create", "viewer"]);
        assert!(!o.status.success(), "{backend}: a taken name");
        assert!(
            stderr(&o).contains("has already been taken"),
            "{}",
            stderr(&o)
        );

        // grant: one unknown name refuses them all.
        let before = snapshot(&raw).await;
        let o = run(
            &db,
            &[
                "role:grant",
                "viewer",
                "update_invoice",
                "no_such_permission",
            ],
        );
        assert!(!o.status.success(), "{backend}");
        assert!(
            stderr(&o).contains("`no_such_permission` is not a permission"),
            "{}",
            stderr(&o)
        );
        assert_eq!(snapshot(&raw).await, before, "{backend}: nothing granted");
        let o = run(&db, &["role:grant", "nobody", "update_invoice"]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("no role `nobody`"), "{}", stderr(&o));

        let o = run(
            &db,
            &["role:grant", "viewer", "update_invoice", "delete_invoice"],
        );
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        assert!(
            list(&db)
                .contains("viewer: delete_invoice, update_invoice, view_any_invoice, view_invoice"),
            "{backend}: {}",
            list(&db)
        );

        // revoke: likewise all or nothing.
        let before = snapshot(&raw).await;
        let o = run(
            &db,
            &[
                "role:revoke",
                "viewer",
                "delete_invoice",
                "no_such_permission",
            ],
        );
        assert!(!o.status.success(), "{backend}");
        assert_eq!(snapshot(&raw).await, before, "{backend}: nothing revoked");
        let o = run(
            &db,
            &["role:revoke", "viewer", "delete_invoice,update_invoice"],
        );
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        assert!(
            list(&db).contains("viewer: view_any_invoice, view_invoice"),
            "{backend}: {}",
            list(&db)
        );
        assert!(list(&db).contains("super_admin: every permission"));

        // Every change is in the audit trail as the console's.
        let role_entries = count(
            &raw,
            "SELECT COUNT(*) FROM platform_audits WHERE resource = 'role' AND actor_type = 'console'",
        )
        .await;
        assert_eq!(
            role_entries, 3,
            "{backend}: created, granted (updated), revoked (updated)"
        );
        let o = run(&db, &["audit:verify"]);
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        raw.close().await;
    }
}

/// `serve` on a free port of a fresh SQLite database; killed on drop.
struct Served {
    child: std::process::Child,
    addr: String,
    _db: TestDb,
}

impl Served {
    async fn start() -> Self {
        let db = TestDb::sqlite();
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
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Self {
                    child,
                    addr,
                    _db: db,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve did not listen on {addr}");
    }

    /// `GET path`: the status, the headers (lower-cased names) and the body.
    fn get(&self, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (status, headers, raw[split + 4..].to_vec())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The values of every `attr="..."` in `html`.
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest[..rest.find('"').unwrap()].replace("&amp;", "&")
        })
        .collect()
}

#[tokio::test]
async fn the_api_reference_is_served_from_this_origin() {
    let server = Served::start().await;
    let (status, headers, body) = server.get("/api/docs");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    let csp = header(&headers, "content-security-policy");
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("default-src 'none'")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("id=\"swagger-ui\""), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from another origin: {html}"
    );
    // No inline script: every <script> has a src.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"").count(),
        "{html}"
    );
    let data_url = attr_values(&html, "data-url");
    assert_eq!(data_url, ["/api/openapi.json"]);
    let assets: Vec<String> = attr_values(&html, "src")
        .into_iter()
        .chain(attr_values(&html, "href"))
        .filter(|u| u != "data:,") // the empty favicon: no request at all
        .collect();
    assert_eq!(
        assets.len(),
        4,
        "a stylesheet, two scripts, the document: {assets:?}"
    );
    for url in &assets {
        assert!(
            url.starts_with('/') && !url.starts_with("//"),
            "same origin: {url}"
        );
        let (status, headers, body) = server.get(url);
        assert_eq!(status, 200, "{url}");
        assert!(!body.is_empty(), "{url}");
        let path = url.split('?').next().unwrap();
        let expected = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if path.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "application/json"
        };
        assert_eq!(header(&headers, "content-type"), expected, "{url}");
        assert_eq!(
            header(&headers, "x-content-type-options"),
            "nosniff",
            "{url}"
        );
        if url.contains("?v=") {
            assert!(
                header(&headers, "cache-control").contains("immutable"),
                "{url}"
            );
        }
    }
    let (status, _, _) = server.get("/api/docs/nothing.js");
    assert_eq!(status, 404);
}

/// The first cell of each row of the Markdown table in `md` whose header
/// row starts with `| {first} |`.
fn table_first_cells(md: &str, first: &str) -> Vec<String> {
    let header = format!("| {first} |");
    let start = md
        .lines()
        .position(|l| l.starts_with(&header))
        .unwrap_or_else(|| panic!("no table starting `{header}`"));
    md.lines()
        .skip(start + 2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap().trim().to_owned())
        .collect()
}

/// The command names `--help` lists (without `help`).
fn help_commands() -> Vec<String> {
    let o = Command::new(EXE).arg("--help").output().unwrap();
    assert!(o.status.success());
    let text = stdout(&o);
    let names: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 10, "commands in --help:\n{text}");
    names
}

fn cli_chapter() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../book/src/cli.md")).unwrap()
}

#[test]
fn cli_chapter_documents_every_command() {
    let help = help_commands();
    // The first word of each row's first cell: `serve [--addr ...]` -> serve.
    let documented: Vec<String> = table_first_cells(&cli_chapter(), "command")
        .iter()
        .map(|c| {
            c.trim_matches('`')
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('`')
                .to_owned()
        })
        .collect();
    let missing: Vec<&String> = help.iter().filter(|c| !documented.contains(c)).collect();
    assert!(
        missing.is_empty(),
        "book/src/cli.md's command table lacks {missing:?} (listed by --help)"
    );
    let unknown: Vec<&String> = documented.iter().filter(|c| !help.contains(c)).collect();
    assert!(
        unknown.is_empty(),
        "book/src/cli.md documents {unknown:?}, which --help does not list"
    );
}

#[tokio::test]
async fn cli_chapter_lists_what_serve_serves() {
    let documented: Vec<String> = table_first_cells(&cli_chapter(), "path")
        .iter()
        .map(|c| c.trim_matches('`').to_owned())
        .collect();
    let server = Served::start().await;
    // Every path the server's index names is in the chapter's table.
    let (status, _, body) = server.get("/");
    assert_eq!(status, 200);
    let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let served: Vec<&str> = index
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(served.len() >= 4, "{index}");
    for path in &served {
        assert!(
            documented
                .iter()
                .any(|d| d == path || d.starts_with(&format!("{path}/"))),
            "serve's index names {path}; book/src/cli.md's path table does not: {documented:?}"
        );
    }
    // Every path in the table answers (a sign-in redirect or a 401 counts;
    // a 404 does not); `/api/<plural>` stands for every resource.
    assert!(documented.len() >= 6, "{documented:?}");
    for path in &documented {
        assert!(path.starts_with('/'), "{path}");
        if path.contains('<') {
            continue;
        }
        let (status, _, _) = server.get(path);
        assert!(
            status != 404 && status < 500,
            "book/src/cli.md lists {path}; serve answers {status}"
        );
    }
}

/// The stored hash and forced-change flag of a user.
async fn password_row(raw: &Db, email: &str) -> (String, bool) {
    let mut q = raw.sql();
    q.push("SELECT password_hash, password_change_required FROM platform_users WHERE email = ")
        .bind_str(email.to_owned());
    let row = raw
        .fetch_optional(
            q,
            &[
                platform_core::value::FieldType::Text,
                platform_core::value::FieldType::Bool,
            ],
        )
        .await
        .unwrap()
        .expect("the user");
    let flag =
        matches!(row[1], platform_core::value::Value::Bool(true)) || row[1].as_i64() == Some(1);
    (row[0].as_str().unwrap().to_owned(), flag)
}

#[tokio::test]
async fn user_password_resets_audited_all_or_nothing() {
    use platform_core::access::verify_password;
    for db in all_backends().await {
        let backend = db.backend.name();
        assert!(run(&db, &["migrate"]).status.success());
        let email = "pat@example.com";
        let o = run(
            &db,
            &[
                "user:create",
                "--email",
                email,
                "--password",
                "first password 1",
            ],
        );
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        let raw = Db::connect(&db.url).await.unwrap();
        let (first, flag) = password_row(&raw, email).await;
        assert!(verify_password("first password 1", &first));
        assert!(!flag, "{backend}: a chosen password is not to be changed");
        let audits = "SELECT COUNT(*) FROM platform_audits WHERE event = 'password_changed' AND actor_type = 'console'";
        let before = count(&raw, audits).await;

        // A given password: set, not flagged, audited as the console's.
        let o = run(
            &db,
            &[
                "user:password",
                "--email",
                "PAT@example.com",
                "--password",
                "second password 2",
            ],
        );
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("set the password of pat@example.com"),
            "{}",
            stdout(&o)
        );
        assert!(!stdout(&o).contains("second password 2"), "never echoed");
        let (second, flag) = password_row(&raw, email).await;
        assert!(verify_password("second password 2", &second), "{backend}");
        assert!(!verify_password("first password 1", &second), "{backend}");
        assert!(!flag, "{backend}");
        assert_eq!(count(&raw, audits).await, before + 1, "{backend}: audited");

        // None given: generated, printed once, to be changed at sign-in.
        let o = run(&db, &["user:password", "--email", email]);
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
        let out = stdout(&o);
        let generated = out
            .lines()
            .find_map(|l| l.strip_prefix("password: "))
            .unwrap_or_else(|| panic!("{backend}: no password printed: {out}"))
            .to_owned();
        assert!(generated.len() >= 15, "{generated}");
        let (third, flag) = password_row(&raw, email).await;
        assert!(verify_password(&generated, &third), "{backend}");
        assert!(flag, "{backend}: a generated password must be changed");
        assert_eq!(count(&raw, audits).await, before + 2, "{backend}: audited");

        // Refused, nothing changed: an unknown address, a short password,
        // and a failure inside the transaction (the audit entry refused).
        let snap = snapshot(&raw).await;
        let o = run(
            &db,
            &[
                "user:password",
                "--email",
                "nobody@example.com",
                "--password",
                "whatever pw 9",
            ],
        );
        assert!(!o.status.success(), "{backend}: unknown e-mail");
        assert!(
            stderr(&o).contains("no user with e-mail nobody@example.com"),
            "{backend}: {}",
            stderr(&o)
        );
        let o = run(
            &db,
            &["user:password", "--email", email, "--password", "short"],
        );
        assert!(!o.status.success(), "{backend}: a short password");
        assert!(
            stderr(&o).contains("at least 8"),
            "{backend}: {}",
            stderr(&o)
        );
        refuse_inserts(&raw, "platform_audits").await;
        let o = run(
            &db,
            &[
                "user:password",
                "--email",
                email,
                "--password",
                "fourth password 4",
            ],
        );
        assert!(
            !o.status.success(),
            "{backend}: the refused audit entry must fail"
        );
        drop_refusal(&raw, "platform_audits").await;
        assert_eq!(snapshot(&raw).await, snap, "{backend}");
        assert_eq!(
            password_row(&raw, email).await,
            (third, true),
            "{backend}: the password and the flag are as they were"
        );
        raw.close().await;
    }
}

#[test]
fn logs_have_no_colours_when_not_on_a_terminal() {
    let dir = std::env::temp_dir().join(format!("platform-colours-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // stderr is a pipe here: no ANSI escapes, with or without NO_COLOR.
    for (i, no_color) in [None, Some("1")].into_iter().enumerate() {
        // A new database each time, so that `migrate` logs what it applies.
        let url = format!("sqlite://{}/{i}.db?mode=rwc", dir.display());
        let mut c = Command::new(EXE);
        c.arg("migrate")
            .env("PLATFORM_DATABASE_URL", &url)
            .env("PLATFORM_APP_KEY", test_key().to_config_string())
            .env("RUST_LOG", "info");
        match no_color {
            Some(v) => c.env("NO_COLOR", v),
            None => c.env_remove("NO_COLOR"),
        };
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("INFO"), "logs were written: {err}");
        assert!(!err.contains("\x1b["), "ANSI escapes in {err:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_connection_is_one_clear_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = Command::new(EXE)
        .arg("role:list")
        .env(
            "PLATFORM_DATABASE_URL",
            format!("postgres://app:s3cret-pw@127.0.0.1:{port}/x"),
        )
        .env("PLATFORM_APP_KEY", test_key().to_config_string())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}"))
            && err.contains("server is running"),
        "{err}"
    );
    assert!(!err.contains("Caused by"), "said once: {err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}

#[test]
fn an_old_layout_keeps_working_and_says_how_to_move_it() {
    let dir = std::env::temp_dir().join(format!("platform-old-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(EXE);
        c.args(args)
            .current_dir(&dir)
            .env("RUST_BACKTRACE", "0")
            .env_remove("PLATFORM_DATABASE_URL")
            .env_remove("PLATFORM_APP_KEY")
            .env_remove("PLATFORM_KEY_FILE")
            .env_remove("PLATFORM_ENV");
        c
    };
    // The files an application had before the state folder.
    let key = stdout(&cmd(&["key:generate"]).output().unwrap());
    std::fs::write(dir.join("platform.key"), &key).unwrap();
    let o = cmd(&["migrate"])
        .env("PLATFORM_DATABASE_URL", "sqlite://platform.db?mode=rwc")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let o = cmd(&["role:list"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("using ./platform.db") && err.contains("mv platform.db* .platform/"),
        "{err}"
    );
    assert!(
        err.contains("reading the app key from platform.key"),
        "{err}"
    );
    assert_eq!(err.matches("notice:").count(), 2, "once each: {err}");
    assert!(
        !dir.join(".platform").exists(),
        "nothing new beside the old files"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("platform.key")).unwrap(),
        key
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
