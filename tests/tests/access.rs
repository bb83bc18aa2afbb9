//! Users, roles, permissions and API tokens on every configured database.

use std::time::Duration;

use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::{Actor, Context};
use platform_core::crypto::sha256_hex;
use platform_core::db::Sql;
use platform_core::error::Error;
use platform_core::query::ListQuery;
use platform_core::value::FieldType;
use platform_tests::all_backends;
use platform_tests::domain::{Invoice, registry};

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        name: "Someone".into(),
        password: "correct horse battery".into(),
    }
}

async fn user_ctx(p: &Platform, id: i64) -> Context {
    let principal = p.access().principal(id).await.unwrap().unwrap();
    Context::new(Actor::User(std::sync::Arc::new(principal)))
}

#[tokio::test]
async fn users_and_passwords() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let p = db.platform(registry()).await;
        let console = Context::console();
        let u = p
            .access()
            .create_user(&console, new_user("Ada@Example.com"))
            .await
            .unwrap();
        assert_eq!(u.email, "ada@example.com", "e-mails are stored lower-cased");
        // Bad input, all at once.
        let err = p
            .access()
            .create_user(
                &console,
                NewUser {
                    email: "not an email".into(),
                    name: String::new(),
                    password: "short".into(),
                },
            )
            .await
            .unwrap_err();
        let Error::Validation(e) = err else {
            panic!("{backend}: {err:?}")
        };
        assert!(
            e.has("email") && e.has("name") && e.has("password"),
            "{e:?}"
        );
        // Duplicates, whatever the case.
        let err = p
            .access()
            .create_user(&console, new_user("ADA@example.com"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Validation(ref e) if e.has("email")),
            "{backend}: {err:?}"
        );
        // Only argon2id hashes are stored.
        let hash = p
            .db()
            .fetch_all(
                Sql::literal(p.db().backend(), "SELECT password_hash FROM platform_users"),
                &[FieldType::Text],
            )
            .await
            .unwrap()[0][0]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        // Credentials.
        let ok = p
            .access()
            .check_credentials("ada@example.com", "correct horse battery")
            .await
            .unwrap();
        assert_eq!(ok.map(|u| u.id), Some(u.id));
        assert!(
            p.access()
                .check_credentials("ada@example.com", "wrong")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            p.access()
                .check_credentials("nobody@example.com", "x")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            p.access()
                .check_credentials("ada@example.com", &"x".repeat(10_000))
                .await
                .unwrap()
                .is_none()
        );
        // A user changes their own password; another user may not.
        let me = user_ctx(&p, u.id).await;
        p.access()
            .set_password(&me, u.id, "a brand new secret")
            .await
            .unwrap();
        assert!(
            p.access()
                .check_credentials("ada@example.com", "a brand new secret")
                .await
                .unwrap()
                .is_some()
        );
        let other = p
            .access()
            .create_user(&console, new_user("eve@example.com"))
            .await
            .unwrap();
        let eve = user_ctx(&p, other.id).await;
        assert!(matches!(
            p.access()
                .set_password(&eve, u.id, "hijacked password")
                .await,
            Err(Error::PermissionDenied { .. })
        ));
        // Anonymous callers are refused.
        assert!(matches!(
            p.access()
                .create_user(&Context::default(), new_user("x@example.com"))
                .await,
            Err(Error::Unauthenticated)
        ));
    }
}

#[tokio::test]
async fn roles_grants_and_a_cache_that_never_goes_stale() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let p = db.platform(registry()).await;
        let console = Context::console();
        let u = p
            .access()
            .create_user(&console, new_user("clerk@example.com"))
            .await
            .unwrap();
        p.access().create_role(&console, "billing").await.unwrap();
        let err = p
            .access()
            .set_role_permissions(
                &console,
                "billing",
                &["view_any_invoice".into(), "fly_to_moon".into()],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Validation(ref e) if e.has("permissions")),
            "{backend}: {err:?}"
        );
        p.access()
            .set_role_permissions(&console, "billing", &["view_any_invoice".into()])
            .await
            .unwrap();
        p.access()
            .assign_role(&console, u.id, "billing")
            .await
            .unwrap();
        let ctx = user_ctx(&p, u.id).await;
        assert!(
            p.repo::<Invoice>(&ctx)
                .list(&ListQuery::new())
                .await
                .is_ok()
        );

        // A second process on the same database caches the grants too.
        let other = platform_core::Platform::builder()
            .ignore_env()
            .database_url(&db.url)
            .app_key(platform_tests::test_key())
            .registry(registry())
            .background_tasks(false)
            .build()
            .await
            .unwrap();
        assert!(
            other
                .access()
                .grants(u.id)
                .await
                .unwrap()
                .has("view_any_invoice")
        );

        // Revoke here: this process sees it at once ...
        p.access()
            .revoke_role_permission(&console, "billing", "view_any_invoice")
            .await
            .unwrap();
        assert!(
            !p.access()
                .grants(u.id)
                .await
                .unwrap()
                .has("view_any_invoice"),
            "{backend}"
        );
        // ... the other one after its next poll (every second in a running platform).
        other.access().poll_changes().await.unwrap();
        assert!(
            !other
                .access()
                .grants(u.id)
                .await
                .unwrap()
                .has("view_any_invoice"),
            "{backend}"
        );

        // Direct grants, and removing a role.
        p.access()
            .grant_user_permission(&console, u.id, "view_pii")
            .await
            .unwrap();
        assert!(p.access().grants(u.id).await.unwrap().has("view_pii"));
        p.access()
            .revoke_user_permission(&console, u.id, "view_pii")
            .await
            .unwrap();
        assert!(!p.access().grants(u.id).await.unwrap().has("view_pii"));
        p.access()
            .remove_role(&console, u.id, "billing")
            .await
            .unwrap();
        assert!(p.access().grants(u.id).await.unwrap().roles().is_empty());

        // Only a super admin makes another one, even with `update_user`.
        p.access().create_role(&console, "hr").await.unwrap();
        p.access()
            .set_role_permissions(&console, "hr", &["update_user".into()])
            .await
            .unwrap();
        let hr = p
            .access()
            .create_user(&console, new_user("hr@example.com"))
            .await
            .unwrap();
        p.access().assign_role(&console, hr.id, "hr").await.unwrap();
        let hr_ctx = user_ctx(&p, hr.id).await;
        let err = p
            .access()
            .assign_role(&hr_ctx, u.id, "super_admin")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::PermissionDenied { ref ability } if ability == "super_admin"),
            "{err:?}"
        );
        p.access().assign_role(&hr_ctx, u.id, "hr").await.unwrap();
        assert!(
            p.access()
                .delete_role(&console, "super_admin")
                .await
                .is_err()
        );

        // Grant changes are audited.
        let entries = p
            .audit()
            .for_record("user", &u.id.to_string(), 50)
            .await
            .unwrap();
        let events: Vec<&str> = entries.iter().map(|e| e.event.as_str()).collect();
        assert!(
            events.contains(&"role_assigned") && events.contains(&"permission_revoked"),
            "{events:?}"
        );
        assert!(p.audit().verify().await.unwrap().is_ok(), "{backend}");
    }
}

#[tokio::test]
async fn api_tokens() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let p = db.platform(registry()).await;
        let console = Context::console();
        let u = p
            .access()
            .create_user(&console, new_user("api@example.com"))
            .await
            .unwrap();
        p.access().create_role(&console, "reader").await.unwrap();
        p.access()
            .set_role_permissions(
                &console,
                "reader",
                &[
                    "view_any_invoice".into(),
                    "view_invoice".into(),
                    "create_invoice".into(),
                ],
            )
            .await
            .unwrap();
        p.access()
            .assign_role(&console, u.id, "reader")
            .await
            .unwrap();

        let t = p
            .access()
            .create_token(&console, u.id, "ci", &["view_any_invoice".into()], None)
            .await
            .unwrap();
        assert!(t.plain_text.starts_with("plt_") && t.plain_text.len() > 40);
        // Stored only as its hash.
        let stored = p
            .db()
            .fetch_all(
                Sql::literal(
                    p.db().backend(),
                    "SELECT token_hash FROM platform_api_tokens",
                ),
                &[FieldType::Text],
            )
            .await
            .unwrap();
        assert_eq!(
            stored[0][0].as_str(),
            Some(sha256_hex(t.plain_text.as_bytes()).as_str())
        );

        let actor = p.access().authenticate_token(&t.plain_text).await.unwrap();
        assert!(actor.can("view_any_invoice"));
        assert!(
            !actor.can("create_invoice"),
            "{backend}: limited by the token's abilities"
        );
        assert!(!actor.can("delete_invoice"));

        // last_used_at is written (off the request path), at most once a minute.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let used = p.access().tokens(u.id).await.unwrap()[0].last_used_at;
        assert!(used.is_some(), "{backend}");
        p.access().authenticate_token(&t.plain_text).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(p.access().tokens(u.id).await.unwrap()[0].last_used_at, used);

        // Unknown, malformed and oversized tokens.
        for bad in [
            "",
            "Bearer",
            "plt_",
            "plt_nope",
            "x".repeat(5000).as_str(),
            "' OR 1=1 --",
        ] {
            assert!(
                matches!(
                    p.access().authenticate_token(bad).await,
                    Err(Error::Unauthenticated)
                ),
                "{bad:?}"
            );
        }
        // Revocation works at once, even though tokens are cached.
        p.access().revoke_token(&console, t.info.id).await.unwrap();
        assert!(
            matches!(
                p.access().authenticate_token(&t.plain_text).await,
                Err(Error::Unauthenticated)
            ),
            "{backend}"
        );

        // Expiry.
        let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1200);
        let short = p
            .access()
            .create_token(&console, u.id, "short", &[], Some(soon))
            .await
            .unwrap();
        assert!(
            p.access()
                .authenticate_token(&short.plain_text)
                .await
                .is_ok()
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(matches!(
            p.access().authenticate_token(&short.plain_text).await,
            Err(Error::Unauthenticated)
        ));
        // Bad token input.
        let past = chrono::Utc::now() - chrono::Duration::days(1);
        assert!(matches!(
            p.access().create_token(&console, u.id, "", &["nope".into()], Some(past)).await,
            Err(Error::Validation(ref e)) if e.has("name") && e.has("abilities") && e.has("expires_at")
        ));
        // A user may create their own tokens, not someone else's.
        let other = p
            .access()
            .create_user(&console, new_user("other@example.com"))
            .await
            .unwrap();
        let me = user_ctx(&p, u.id).await;
        assert!(
            p.access()
                .create_token(&me, u.id, "mine", &[], None)
                .await
                .is_ok()
        );
        assert!(matches!(
            p.access()
                .create_token(&me, other.id, "theirs", &[], None)
                .await,
            Err(Error::PermissionDenied { .. })
        ));
    }
}

// ---- issue 8: e-mail addresses, their case, token abilities ------------------

const BAD_EMAILS: [&str; 4] = [
    "a\"><svg/onload=alert(1)>@x.com",
    "not an email",
    "ada@example..com",
    "ada@exa mple.com",
];

fn email_refused(err: &Error) -> bool {
    matches!(err, Error::Validation(e)
        if e.for_field("email").any(|f| f.code == "invalid" && f.message.contains("valid e-mail address")))
}

#[tokio::test]
async fn user_emails_are_validated_on_every_writer() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = db.platform(registry()).await;
        let console = Context::console();
        let ada = p
            .access()
            .create_user(&console, new_user("ada@example.com"))
            .await
            .unwrap();
        let me = user_ctx(&p, ada.id).await;
        for bad in BAD_EMAILS {
            let err = p
                .access()
                .create_user(&console, new_user(bad))
                .await
                .unwrap_err();
            assert!(email_refused(&err), "{b}: create_user({bad:?}): {err:?}");
            let err = p
                .auth()
                .update_profile(
                    &me,
                    ada.id,
                    platform_core::auth::ProfileUpdate {
                        name: "Ada".into(),
                        email: bad.into(),
                    },
                )
                .await
                .unwrap_err();
            assert!(email_refused(&err), "{b}: update_profile({bad:?}): {err:?}");
        }
        assert_eq!(p.access().users().await.unwrap().len(), 1, "{b}");
        assert_eq!(
            p.access().user(ada.id).await.unwrap().unwrap().email,
            "ada@example.com"
        );
        let err = p
            .access()
            .create_user(&console, new_user("   "))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.for_field("email").any(|f| f.code == "required")),
            "{b}: {err:?}"
        );
    }
}

#[tokio::test]
async fn user_create_on_the_command_line_refuses_a_bad_email() {
    let db = platform_tests::TestDb::sqlite();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cli_app"))
            .args(args)
            .env("PLATFORM_DATABASE_URL", &db.url)
            .env(
                "PLATFORM_APP_KEY",
                platform_tests::test_key().to_config_string(),
            )
            .env("RUST_BACKTRACE", "0")
            .env_remove("PLATFORM_ENV")
            .output()
            .unwrap()
    };
    for bad in BAD_EMAILS {
        let o = run(&[
            "user:create",
            "--email",
            bad,
            "--password",
            "long enough pw",
        ]);
        assert!(!o.status.success(), "{bad:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("must be a valid e-mail address"),
            "{bad:?}: {err}"
        );
    }
    // Mixed case is stored lower-cased; the token's abilities are held.
    let o = run(&[
        "user:create",
        "--email",
        "Root@Example.COM",
        "--password",
        "long enough pw",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("root@example.com"));
    let o = run(&[
        "token:create",
        "--email",
        "ROOT@example.com",
        "--abilities",
        "view_any_invoice,delete_invoice",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`delete_invoice`") && err.contains("`view_any_invoice`"),
        "{err}"
    );
    let o = run(&["token:create", "--email", "root@example.com"]);
    assert!(
        o.status.success(),
        "`*` is allowed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test]
async fn emails_are_unique_and_found_whatever_their_case() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = db.platform(registry()).await;
        let console = Context::console();
        let ada = p
            .access()
            .create_user(&console, new_user("Ada@Example.com"))
            .await
            .unwrap();
        assert_eq!(ada.email, "ada@example.com");
        // Found by any case.
        for typed in ["Ada@Example.com", "ADA@EXAMPLE.COM", " ada@example.com "] {
            assert_eq!(
                p.access()
                    .check_credentials(typed, "correct horse battery")
                    .await
                    .unwrap()
                    .map(|u| u.id),
                Some(ada.id),
                "{b}: {typed}"
            );
            assert!(matches!(
                p.auth()
                    .attempt_login(&Context::default(), typed, "correct horse battery")
                    .await
                    .unwrap(),
                platform_core::auth::LoginOutcome::Success(_)
            ));
        }
        // A profile change to another account's address in another case.
        let bob = p
            .access()
            .create_user(&console, new_user("bob@example.com"))
            .await
            .unwrap();
        let err = p
            .auth()
            .update_profile(
                &user_ctx(&p, bob.id).await,
                bob.id,
                platform_core::auth::ProfileUpdate {
                    name: "Bob".into(),
                    email: "ADA@example.COM".into(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.for_field("email").any(|f| f.code == "unique")),
            "{b}: {err:?}"
        );
        // The database itself refuses a case twin written behind the
        // platform's back.
        let mut q = p.db().sql();
        q.push("INSERT INTO platform_users (email, name, password_hash, created_at, updated_at) VALUES (")
            .bind_str("ADA@example.com")
            .push(", 'x', 'x', ")
            .bind(
                platform_core::value::Value::DateTime(chrono::Utc::now()),
                FieldType::DateTime,
            )
            .push(", ")
            .bind(
                platform_core::value::Value::DateTime(chrono::Utc::now()),
                FieldType::DateTime,
            )
            .push(")");
        assert!(
            p.db().execute(q).await.is_err(),
            "{b}: a case twin was stored"
        );
    }
}

#[tokio::test]
async fn the_email_case_migration_normalises_and_names_case_twins() {
    use platform_core::db::{Db, Migration, MigrationSet};
    use platform_core::platform::FRAMEWORK_MIGRATIONS;
    use platform_core::value::Value;
    let before: &'static [Migration] = Box::leak(
        FRAMEWORK_MIGRATIONS
            .migrations
            .iter()
            .filter(|m| m.version < 5)
            .copied()
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let older = MigrationSet {
        name: FRAMEWORK_MIGRATIONS.name,
        migrations: before,
        backends: &[],
    };
    let hash = platform_core::access::hash_password("correct horse battery").unwrap();
    for db in all_backends().await {
        let b = db.backend.name();
        let conn = Db::connect(&db.url).await.unwrap();
        older.run(&conn).await.unwrap();
        let insert = |email: &str| {
            let mut q = conn.sql();
            q.push("INSERT INTO platform_users (email, name, password_hash, created_at, updated_at) VALUES (")
                .bind_str(email)
                .push(", 'x', ")
                .bind_str(hash.clone())
                .push(", ")
                .bind(Value::DateTime(chrono::Utc::now()), FieldType::DateTime)
                .push(", ")
                .bind(Value::DateTime(chrono::Utc::now()), FieldType::DateTime)
                .push(")");
            q
        };
        conn.execute(insert("Mixed.Case@Example.COM"))
            .await
            .unwrap();
        conn.execute(insert("plain@example.com")).await.unwrap();
        let twin = conn.execute(insert("Twin@Example.com")).await;
        let twin2 = conn.execute(insert("twin@example.com")).await;
        twin.unwrap();
        let emails = |conn: &Db| {
            let conn = conn.clone();
            async move {
                conn.fetch_all(
                    Sql::literal(
                        conn.backend(),
                        "SELECT email FROM platform_users ORDER BY id",
                    ),
                    &[FieldType::Text],
                )
                .await
                .unwrap()
                .into_iter()
                .map(|r| r[0].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
            }
        };
        if db.backend == platform_core::db::Backend::MySql {
            // The column's collation ignores case: twins never existed.
            assert!(twin2.is_err(), "{b}");
        } else {
            twin2.unwrap();
            let err = FRAMEWORK_MIGRATIONS
                .run(&conn)
                .await
                .unwrap_err()
                .to_string();
            for part in [
                "Twin@Example.com",
                "twin@example.com",
                "differ only in case",
                "merge or rename",
            ] {
                assert!(err.contains(part), "{b}: `{part}` not in: {err}");
            }
            assert!(!err.contains("plain@example.com"), "{b}: {err}");
            // Nothing changed, nothing merged.
            assert_eq!(
                emails(&conn).await,
                [
                    "Mixed.Case@Example.COM",
                    "plain@example.com",
                    "Twin@Example.com",
                    "twin@example.com"
                ],
                "{b}"
            );
            // Resolved by hand, the migration runs.
            let mut d = conn.sql();
            d.push("DELETE FROM platform_users WHERE email = ")
                .bind_str("Twin@Example.com");
            conn.execute(d).await.unwrap();
        }
        FRAMEWORK_MIGRATIONS.run(&conn).await.unwrap();
        assert_eq!(
            emails(&conn).await,
            [
                "mixed.case@example.com",
                "plain@example.com",
                "twin@example.com"
            ],
            "{b}"
        );
        assert!(
            conn.execute(insert("PLAIN@example.com")).await.is_err(),
            "{b}: the lower-cased address is unique"
        );
        conn.close().await;
        let p = db.platform(registry()).await;
        assert!(
            p.access()
                .check_credentials("MIXED.case@example.com", "correct horse battery")
                .await
                .unwrap()
                .is_some(),
            "{b}"
        );
    }
}

#[tokio::test]
async fn a_token_never_names_an_ability_its_owner_lacks() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = db.platform(registry()).await;
        let console = Context::console();
        let access = p.access();
        access.create_role(&console, "reader").await.unwrap();
        access
            .set_role_permissions(&console, "reader", &["view_any_invoice".into()])
            .await
            .unwrap();
        let u = access
            .create_user(&console, new_user("reader@example.com"))
            .await
            .unwrap();
        access.assign_role(&console, u.id, "reader").await.unwrap();
        access
            .grant_user_permission(&console, u.id, "view_invoice")
            .await
            .unwrap();
        let me = user_ctx(&p, u.id).await;
        for ctx in [&console, &me] {
            let err = access
                .create_token(
                    ctx,
                    u.id,
                    "too much",
                    &[
                        "view_any_invoice".into(),
                        "force_delete_invoice".into(),
                        "delete_invoice".into(),
                    ],
                    None,
                )
                .await
                .unwrap_err();
            let Error::Validation(e) = &err else {
                panic!("{b}: {err:?}")
            };
            let f = e
                .for_field("abilities")
                .find(|f| f.code == "not_held")
                .unwrap_or_else(|| panic!("{b}: {e:?}"));
            assert!(
                f.message
                    .contains("`delete_invoice`, `force_delete_invoice`"),
                "{b}: {}",
                f.message
            );
            assert!(!f.message.contains("view_any_invoice"), "{}", f.message);
        }
        assert!(access.tokens(u.id).await.unwrap().is_empty(), "{b}");
        // What the owner holds (by role or directly), and `*`, are fine.
        for abilities in [
            vec!["view_any_invoice".to_owned(), "view_invoice".to_owned()],
            vec!["*".to_owned()],
            vec![],
        ] {
            access
                .create_token(&me, u.id, "fine", &abilities, None)
                .await
                .unwrap_or_else(|e| panic!("{b}: {abilities:?}: {e:?}"));
        }
        // A super admin holds everything.
        let root = access
            .create_user(&console, new_user("root@example.com"))
            .await
            .unwrap();
        access
            .assign_role(&console, root.id, "super_admin")
            .await
            .unwrap();
        access
            .create_token(
                &console,
                root.id,
                "all",
                &["force_delete_invoice".into()],
                None,
            )
            .await
            .unwrap();
    }
}

/// Access-log entries read back exactly as recorded on every back end
/// (times to the microsecond, fractional durations, empty optionals), also
/// across a batch larger than one statement, and the writer started by the
/// platform writes what is recorded without waiting for a full batch.
#[tokio::test]
async fn access_log_entries_read_back_as_recorded() {
    use platform_core::access_log::{AccessEntry, AccessLog};
    for db in all_backends().await {
        let b = db.backend.name();
        let p = db.platform(registry()).await;
        let log = AccessLog::new(p.db().clone(), true);
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-05T10:11:12.345678Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let entry = |i: i64| AccessEntry {
            at: at + chrono::Duration::microseconds(i),
            surface: if i % 2 == 0 { "api" } else { "panel" },
            method: "POST".into(),
            path: format!("/api/invoices?n={i}&q=\"quoted\" \\ ünïcode"),
            status: 201,
            duration_ms: 1.25 + i as f64,
            user_id: (i % 3 == 0).then_some(i),
            token_id: None,
            ip: Some("192.0.2.7".into()),
            user_agent: (i % 2 == 1).then(|| "agent/1.0".to_owned()),
            request_id: Some(format!("req-{i}")),
        };
        let n = 1203;
        for i in 0..n {
            log.record(entry(i));
        }
        assert_eq!(log.flush().await.unwrap(), 1203, "{b}");
        let mut read = Vec::new();
        let mut before = None;
        loop {
            let page = log.recent(None, before, 1000).await.unwrap();
            let Some((last, _)) = page.last() else { break };
            before = Some(*last);
            read.extend(page.into_iter().map(|(_, e)| e));
        }
        read.reverse();
        assert_eq!(read.len(), 1203, "{b}");
        for (i, e) in read.iter().enumerate() {
            assert_eq!(*e, entry(i as i64), "{b}: entry {i}");
        }

        // The background writer: one entry is written within its gathering
        // time, not held until 500 are queued.
        let writer = AccessLog::new(p.db().clone(), true);
        let task = tokio::spawn(writer.clone().run_writer());
        writer.record(entry(9_999));
        platform_tests::wait_for("the entry written", Duration::from_secs(5), async || {
            let page = writer.recent(None, None, 1).await.unwrap();
            page.first()
                .filter(|(_, e)| e.request_id.as_deref() == Some("req-9999"))
                .map(|_| ())
        })
        .await;
        writer.stop().await;
        task.await.unwrap();
        p.shutdown().await;
    }
}
