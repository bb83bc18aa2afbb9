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
