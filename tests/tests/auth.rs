//! Authentication on every configured database: sessions, sign-in and its
//! throttling, TOTP two-factor authentication, recovery codes, password
//! reset and confirmation, e-mail verification, profile and password
//! changes, registration, notifications and preferences, and that no
//! secret ever reaches the audit trail.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use platform_core::Platform;
use platform_core::access::{NewUser, User};
use platform_core::auth::{
    AuthConfig, Limit, LoginOutcome, PasswordChange, ProfileUpdate, ThrottleConfig, code_at,
};
use platform_core::context::{Actor, Context};
use platform_core::crypto::sha256_hex;
use platform_core::db::Sql;
use platform_core::error::Error;
use platform_core::mail::{Mail, MemoryMailer};
use platform_core::notification::{Level, Notice};
use platform_core::resource::Registry;
use platform_core::value::{FieldType, Value};
use platform_tests::{TestDb, all_backends, test_key};

const PASSWORD: &str = "correct horse battery";

async fn platform_with(db: &TestDb, config: AuthConfig) -> (Platform, Arc<MemoryMailer>) {
    let mailer = Arc::new(MemoryMailer::new());
    let p = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .background_tasks(false)
        .max_connections(8)
        .auth_config(config)
        .mailer(mailer.clone())
        .build()
        .await
        .unwrap_or_else(|e| panic!("platform on {}: {e}", db.backend.name()));
    (p, mailer)
}

async fn platform(db: &TestDb) -> Platform {
    platform_with(db, AuthConfig::default()).await.0
}

fn from_ip(ip: &str) -> Context {
    Context::default()
        .with_ip(ip.parse::<IpAddr>().unwrap())
        .with_user_agent("auth-test")
}

async fn make_user(p: &Platform, email: &str) -> User {
    p.access()
        .create_user(
            &Context::console(),
            NewUser {
                email: email.into(),
                name: "Someone".into(),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap()
}

async fn as_user(p: &Platform, id: i64) -> Context {
    let principal = p.access().principal(id).await.unwrap().unwrap();
    Context::new(Actor::User(Arc::new(principal))).with_ip("10.9.9.9".parse().unwrap())
}

async fn texts(p: &Platform, sql: &'static str) -> Vec<Option<String>> {
    p.db()
        .fetch_all(Sql::literal(p.db().backend(), sql), &[FieldType::Text])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].as_str().map(str::to_owned))
        .collect()
}

/// Every audit entry as one text, for secret scanning.
async fn audit_dump(p: &Platform) -> String {
    let rows = p
        .db()
        .fetch_all(
            Sql::literal(
                p.db().backend(),
                "SELECT event, resource, record_id, old_values, new_values, actor_label, user_agent, url, tags FROM platform_audits ORDER BY id",
            ),
            &[FieldType::Text; 9],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| v.as_str().unwrap_or("-").to_owned())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn events_for(p: &Platform, user_id: i64) -> Vec<String> {
    let mut q = p.db().sql();
    q.push("SELECT event FROM platform_audits WHERE resource = 'user' AND record_id = ")
        .bind_str(user_id.to_string())
        .push(" ORDER BY id");
    p.db()
        .fetch_all(q, &[FieldType::Text])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn assert_no_secrets(audit: &str, secrets: &[String], backend: &str) {
    for s in secrets {
        assert!(s.len() >= 6, "a secret to look for: {s:?}");
        assert!(
            !audit.contains(s.as_str()),
            "{backend}: the audit trail holds a secret ({s}):\n{audit}"
        );
    }
}

async fn set_session_times(
    p: &Platform,
    token: &str,
    created: DateTime<Utc>,
    last_seen: DateTime<Utc>,
) {
    let mut q = p.db().sql();
    q.push("UPDATE platform_sessions SET created_at = ")
        .bind(Value::DateTime(created), FieldType::DateTime)
        .push(", last_seen_at = ")
        .bind(Value::DateTime(last_seen), FieldType::DateTime)
        .push(" WHERE id = ")
        .bind_str(sha256_hex(token.as_bytes()));
    assert_eq!(p.db().execute(q).await.unwrap(), 1);
}

async fn disable_user(p: &Platform, id: i64) {
    let mut q = p.db().sql();
    q.push("UPDATE platform_users SET disabled_at = ")
        .bind(Value::DateTime(Utc::now()), FieldType::DateTime)
        .push(" WHERE id = ")
        .bind_i64(id);
    p.db().execute(q).await.unwrap();
}

fn hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

// ---- sessions ----------------------------------------------------------------

#[tokio::test]
async fn sessions_start_load_expire_and_rotate_on_login() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = platform(&db).await;
        let sessions = p.auth().sessions();
        let ctx = from_ip("10.0.0.1");
        let ada = make_user(&p, "ada@example.com").await;

        // An anonymous session, e.g. for the sign-in form.
        let (token, mut s) = sessions.start(ctx.ip(), Some("auth-test")).await.unwrap();
        assert_eq!(token.len(), 43, "32 random bytes, base64url");
        assert!(!s.is_authenticated());
        assert_eq!(s.ip(), Some("10.0.0.1"));
        let csrf = s.csrf_token().to_owned();
        assert_eq!(csrf.len(), 43);
        assert!(s.verify_csrf(&csrf));
        assert!(!s.verify_csrf(""));
        assert!(!s.verify_csrf(&csrf[..42]));
        // Only the SHA-256 of the token is stored.
        let ids = texts(&p, "SELECT id FROM platform_sessions").await;
        assert_eq!(ids, vec![Some(sha256_hex(token.as_bytes()))], "{b}");
        let loaded = sessions.load(&token).await.unwrap().expect("loads");
        assert_eq!(loaded.csrf_token(), csrf);
        assert!(sessions.load("garbage").await.unwrap().is_none());
        assert!(
            sessions.load(&"A".repeat(43)).await.unwrap().is_none(),
            "{b}: an unknown token"
        );

        // Data: flash, intended URL, anything else, and a pending 2FA login.
        s.flash("status", "Welcome back");
        s.set_intended("/admin/invoices?page=2");
        s.data.insert("theme", "dark");
        s.set_pending_login(ada.id);
        sessions.save(&s).await.unwrap();
        let mut s = sessions.load(&token).await.unwrap().unwrap();
        assert_eq!(s.data.get::<String>("theme").as_deref(), Some("dark"));
        assert_eq!(s.pending_login(), Some(ada.id), "{b}");

        // Signing in rotates the session: the old token is dead (fixation).
        let new_token = sessions.login(&ctx, &mut s, ada.id).await.unwrap();
        assert_ne!(new_token, token);
        assert!(
            sessions.load(&token).await.unwrap().is_none(),
            "{b}: the pre-login token must not load after login"
        );
        assert_eq!(s.user_id(), Some(ada.id));
        assert_ne!(s.csrf_token(), csrf, "{b}: a new CSRF token");
        assert!(!s.verify_csrf(&csrf));
        assert!(!s.two_factor_passed(), "ada has no 2FA");
        let mut s = sessions.load(&new_token).await.unwrap().expect("new loads");
        assert_eq!(s.user_id(), Some(ada.id));
        assert_eq!(s.data.get::<String>("theme"), None, "{b}: data is dropped");
        assert_eq!(s.pending_login(), None, "{b}: so is the pending login");
        let flash = s.take_flash();
        assert_eq!(flash.len(), 1, "{b}: flash survives login");
        assert_eq!(flash[0].message, "Welcome back");
        assert_eq!(s.take_intended().as_deref(), Some("/admin/invoices?page=2"));
        sessions.save(&s).await.unwrap();
        let s = sessions.load(&new_token).await.unwrap().unwrap();
        assert!(s.data.is_empty(), "{b}: taken flash is gone once saved");
        assert_eq!(
            texts(&p, "SELECT id FROM platform_sessions").await.len(),
            1,
            "{b}: the old row is deleted"
        );

        // last_seen_at is written at most once a minute.
        let old = Utc::now() - chrono::Duration::minutes(5);
        set_session_times(&p, &new_token, old, old).await;
        let s = sessions.load(&new_token).await.unwrap().unwrap();
        assert!(s.last_seen_at() > Utc::now() - chrono::Duration::minutes(1));
        let reloaded = sessions.load(&new_token).await.unwrap().unwrap();
        assert_eq!(reloaded.last_seen_at(), s.last_seen_at(), "{b}");

        // Idle timeout (2 h) and absolute lifetime (12 h).
        set_session_times(&p, &new_token, Utc::now() - hours(3), Utc::now() - hours(3)).await;
        assert!(
            sessions.load(&new_token).await.unwrap().is_none(),
            "{b}: idle for 3 h"
        );
        let (t2, _) = sessions.start(ctx.ip(), None).await.unwrap();
        set_session_times(
            &p,
            &t2,
            Utc::now() - hours(13),
            Utc::now() - chrono::Duration::minutes(2),
        )
        .await;
        assert!(
            sessions.load(&t2).await.unwrap().is_none(),
            "{b}: older than 12 h though recently used"
        );
        let (t3, _) = sessions.start(ctx.ip(), None).await.unwrap();
        set_session_times(
            &p,
            &t3,
            Utc::now() - hours(11),
            Utc::now() - chrono::Duration::minutes(30),
        )
        .await;
        assert!(sessions.load(&t3).await.unwrap().is_some(), "{b}");

        // Sign-out.
        let (t4, mut s4) = sessions.start(ctx.ip(), None).await.unwrap();
        let t4b = sessions.login(&ctx, &mut s4, ada.id).await.unwrap();
        assert!(sessions.load(&t4b).await.unwrap().is_some());
        sessions.logout(&ctx, &t4b).await.unwrap();
        assert!(sessions.load(&t4b).await.unwrap().is_none(), "{b}");
        assert!(sessions.load(&t4).await.unwrap().is_none());

        // Every session of a user but one.
        let mut tokens = Vec::new();
        for _ in 0..3 {
            let (_, mut s) = sessions.start(ctx.ip(), None).await.unwrap();
            tokens.push(sessions.login(&ctx, &mut s, ada.id).await.unwrap());
        }
        assert_eq!(sessions.count_for_user(ada.id).await.unwrap(), 3);
        let bob = make_user(&p, "bob@example.com").await;
        assert!(matches!(
            sessions
                .destroy_user_sessions(&as_user(&p, bob.id).await, ada.id, None)
                .await,
            Err(Error::PermissionDenied { .. })
        ));
        assert!(matches!(
            sessions.destroy_user_sessions(&ctx, ada.id, None).await,
            Err(Error::Unauthenticated)
        ));
        let ended = sessions
            .destroy_user_sessions(&as_user(&p, ada.id).await, ada.id, Some(&tokens[1]))
            .await
            .unwrap();
        assert_eq!(ended, 2, "{b}");
        assert!(sessions.load(&tokens[0]).await.unwrap().is_none());
        assert!(sessions.load(&tokens[1]).await.unwrap().is_some());
        assert!(sessions.load(&tokens[2]).await.unwrap().is_none());

        // A disabled user's session no longer loads; signing them in fails.
        disable_user(&p, ada.id).await;
        assert!(sessions.load(&tokens[1]).await.unwrap().is_none(), "{b}");
        let (_, mut s5) = sessions.start(ctx.ip(), None).await.unwrap();
        assert!(matches!(
            sessions.login(&ctx, &mut s5, ada.id).await,
            Err(Error::Unauthenticated)
        ));

        // Pruning removes expired rows only.
        set_session_times(&p, &t3, Utc::now() - hours(13), Utc::now() - hours(13)).await;
        let mut q = p.db().sql();
        q.push("UPDATE platform_sessions SET expires_at = ")
            .bind(Value::DateTime(Utc::now() - hours(1)), FieldType::DateTime)
            .push(" WHERE id = ")
            .bind_str(sha256_hex(t3.as_bytes()));
        p.db().execute(q).await.unwrap();
        let before = texts(&p, "SELECT id FROM platform_sessions").await.len();
        assert_eq!(sessions.prune_expired().await.unwrap(), 1, "{b}");
        assert_eq!(
            texts(&p, "SELECT id FROM platform_sessions").await.len(),
            before - 1
        );

        let events = events_for(&p, ada.id).await;
        assert!(
            events.iter().filter(|e| *e == "login").count() >= 5,
            "{events:?}"
        );
        assert!(events.contains(&"logout".to_owned()), "{events:?}");
        assert!(
            events.contains(&"sessions_revoked".to_owned()),
            "{events:?}"
        );
        let mut secrets = vec![token, new_token, t2, t3, t4, t4b, csrf];
        secrets.extend(tokens);
        assert_no_secrets(&audit_dump(&p).await, &secrets, b);
    }
}

// ---- sign-in -----------------------------------------------------------------

#[tokio::test]
async fn login_outcomes_do_not_reveal_accounts_and_are_throttled() {
    for db in all_backends().await {
        let b = db.backend.name();
        // The default limits (5 and 30 a minute), spread over an hour so
        // that no attempt is refilled while a loaded machine hashes: the
        // counts below stay exact however slow argon2 runs.
        let hour = Duration::from_secs(3600);
        let mut config = AuthConfig::default();
        config.throttle.login = Limit { max: 5, per: hour };
        config.throttle.ip = Limit { max: 30, per: hour };
        let (p, _) = platform_with(&db, config).await;
        let auth = p.auth();
        let ada = make_user(&p, "ada@example.com").await;
        let ctx = from_ip("10.1.0.1");

        match auth
            .attempt_login(&ctx, "ADA@example.com ", PASSWORD)
            .await
            .unwrap()
        {
            LoginOutcome::Success(u) => assert_eq!(u.id, ada.id),
            other => panic!("{b}: {other:?}"),
        }
        let wrong = auth
            .attempt_login(&ctx, "ada@example.com", "wrong password")
            .await
            .unwrap();
        let unknown = auth
            .attempt_login(&ctx, "nobody@example.com", "wrong password")
            .await
            .unwrap();
        assert_eq!(wrong, LoginOutcome::Failed, "{b}");
        assert_eq!(
            unknown, wrong,
            "{b}: an unknown e-mail and a wrong password look the same"
        );

        // Per account and address: 5 a minute (3 used above on ada/10.1.0.1:
        // success, wrong; the unknown e-mail is another account).
        for _ in 0..3 {
            assert_eq!(
                auth.attempt_login(&ctx, "ada@example.com", "nope nope")
                    .await
                    .unwrap(),
                LoginOutcome::Failed
            );
        }
        match auth
            .attempt_login(&ctx, "ada@example.com", PASSWORD)
            .await
            .unwrap()
        {
            LoginOutcome::Throttled { retry_after } => {
                assert!(
                    retry_after > Duration::ZERO && retry_after <= Duration::from_secs(3600 / 5)
                );
            }
            other => panic!(
                "{b}: the 6th attempt must be throttled, even with the right password: {other:?}"
            ),
        }
        // Another address still may.
        assert!(matches!(
            auth.attempt_login(&from_ip("10.1.0.2"), "ada@example.com", PASSWORD)
                .await
                .unwrap(),
            LoginOutcome::Success(_)
        ));

        // Per address, across accounts: 30 a minute.
        let spray = from_ip("10.1.0.3");
        for i in 0..30 {
            let out = auth
                .attempt_login(&spray, &format!("user{i}@example.com"), "guess guess")
                .await
                .unwrap();
            assert_eq!(out, LoginOutcome::Failed, "{b}: attempt {i}");
        }
        assert!(
            matches!(
                auth.attempt_login(&spray, "ada@example.com", PASSWORD)
                    .await
                    .unwrap(),
                LoginOutcome::Throttled { .. }
            ),
            "{b}: the 31st attempt from one address is throttled"
        );

        // A disabled account fails like a wrong password.
        let bob = make_user(&p, "bob@example.com").await;
        disable_user(&p, bob.id).await;
        assert_eq!(
            auth.attempt_login(&from_ip("10.1.0.4"), "bob@example.com", PASSWORD)
                .await
                .unwrap(),
            LoginOutcome::Failed,
            "{b}"
        );
        assert_no_secrets(
            &audit_dump(&p).await,
            &[PASSWORD.to_owned(), "guess guess".into()],
            b,
        );
    }
}

// ---- two-factor authentication -----------------------------------------------

fn no_2fa_throttle() -> AuthConfig {
    AuthConfig {
        throttle: ThrottleConfig {
            two_factor: Limit::off(),
            ..ThrottleConfig::default()
        },
        ..AuthConfig::default()
    }
}

fn now_secs() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap()
}

/// A six-digit code that is none of the secret's codes around now.
fn wrong_code(secret: &str) -> String {
    let t = now_secs();
    let valid: Vec<String> = (0..5)
        .map(|i| code_at(secret, t + i * 30 - 60).unwrap())
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

#[tokio::test]
async fn totp_setup_confirm_verify_replay_recovery_and_disable() {
    for db in all_backends().await {
        let b = db.backend.name();
        let (p, _) = platform_with(&db, no_2fa_throttle()).await;
        let auth = p.auth();
        let tf = auth.two_factor();
        let ada = make_user(&p, "ada@example.com").await;
        let bob = make_user(&p, "bob@example.com").await;
        let me = as_user(&p, ada.id).await;
        let anon = from_ip("10.2.0.1");

        // Only the user themself (or an admin) may set it up.
        assert!(matches!(
            tf.begin_setup(&as_user(&p, bob.id).await, ada.id).await,
            Err(Error::PermissionDenied { .. })
        ));
        assert!(matches!(
            tf.begin_setup(&anon, ada.id).await,
            Err(Error::Unauthenticated)
        ));

        let setup = tf.begin_setup(&me, ada.id).await.unwrap();
        let secret = setup.secret_base32.clone();
        assert!(secret.len() >= 32, "160-bit secret: {secret}");
        assert!(
            setup
                .otpauth_uri
                .starts_with("otpauth://totp/Platform:ada%40example.com?")
                || setup
                    .otpauth_uri
                    .starts_with("otpauth://totp/Platform:ada@example.com?"),
            "{}",
            setup.otpauth_uri
        );
        assert!(setup.otpauth_uri.contains(&format!("secret={secret}")));
        assert!(setup.otpauth_uri.contains("issuer=Platform"));
        assert!(setup.qr_svg.starts_with("<svg") && setup.qr_svg.contains("<path"));
        assert!(
            !format!("{setup:?}").contains(&secret),
            "Debug hides the secret"
        );
        // Stored encrypted.
        let stored = texts(
            &p,
            "SELECT two_factor_secret FROM platform_users ORDER BY id",
        )
        .await;
        let stored = stored[0].clone().expect("a secret is stored");
        assert!(stored.starts_with("enc:v1:"), "{b}: {stored}");
        assert!(!stored.contains(&secret));
        assert_eq!(
            p.crypto()
                .decrypt(&stored, "platform_users.two_factor_secret")
                .unwrap(),
            secret
        );
        // Not enabled until confirmed.
        assert!(!tf.is_enabled(ada.id).await.unwrap());
        assert!(matches!(
            auth.attempt_login(&anon, "ada@example.com", PASSWORD)
                .await
                .unwrap(),
            LoginOutcome::Success(_)
        ));
        assert!(
            !tf.verify_code(&anon, ada.id, &code_at(&secret, now_secs()).unwrap())
                .await
                .unwrap(),
            "{b}: an unconfirmed secret does not pass sign-in"
        );

        // Confirm: a wrong code is a validation error; the right one enables.
        let err = tf
            .confirm_setup(&me, ada.id, &wrong_code(&secret))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Validation(ref e) if e.has("code")),
            "{b}: {err:?}"
        );
        let t0 = now_secs();
        let confirm_code = code_at(&secret, t0).unwrap();
        let codes = tf.confirm_setup(&me, ada.id, &confirm_code).await.unwrap();
        assert_eq!(codes.codes().len(), 8);
        assert!(tf.is_enabled(ada.id).await.unwrap());
        assert_eq!(tf.recovery_codes_left(ada.id).await.unwrap(), 8);
        assert!(matches!(
            tf.begin_setup(&me, ada.id).await,
            Err(Error::Conflict { .. })
        ));
        assert!(matches!(
            tf.confirm_setup(&me, ada.id, &confirm_code).await,
            Err(Error::Conflict { .. })
        ));
        match auth
            .attempt_login(&anon, "ada@example.com", PASSWORD)
            .await
            .unwrap()
        {
            LoginOutcome::TwoFactorRequired(u) => assert_eq!(u.id, ada.id),
            other => panic!("{b}: {other:?}"),
        }

        // Codes: the confirming code is used up (replay); the next step's
        // code works once; an older step's code never again.
        assert!(
            !tf.verify_code(&anon, ada.id, &confirm_code).await.unwrap(),
            "{b}: the code used to confirm must not sign in (replay)"
        );
        let next = code_at(&secret, t0 + 30).unwrap();
        assert!(tf.verify_code(&anon, ada.id, &next).await.unwrap(), "{b}");
        assert!(
            !tf.verify_code(&anon, ada.id, &next).await.unwrap(),
            "{b}: a code is accepted once"
        );
        assert!(
            !tf.verify_code(&anon, ada.id, &code_at(&secret, t0 - 30).unwrap())
                .await
                .unwrap(),
            "{b}: an earlier step's code is refused"
        );
        assert!(
            !tf.verify_code(&anon, ada.id, &wrong_code(&secret))
                .await
                .unwrap()
        );
        assert!(!tf.verify_code(&anon, ada.id, "abc").await.unwrap());
        assert!(!tf.verify_code(&anon, ada.id, "").await.unwrap());
        let last_step = p
            .db()
            .fetch_i64(Sql::literal(
                p.db().backend(),
                "SELECT two_factor_last_step FROM platform_users WHERE email = 'ada@example.com'",
            ))
            .await
            .unwrap();
        assert_eq!(
            last_step,
            Some(i64::try_from((t0 + 30) / 30).unwrap()),
            "{b}"
        );

        // The 2FA sign-in flow marks the session.
        let sessions = auth.sessions();
        let (_, mut s) = sessions.start(anon.ip(), None).await.unwrap();
        s.set_pending_login(ada.id);
        let pending = s.pending_login().expect("pending within 10 minutes");
        let token = sessions.login(&anon, &mut s, pending).await.unwrap();
        let s = sessions.load(&token).await.unwrap().unwrap();
        assert!(s.two_factor_passed(), "{b}");

        // Recovery codes: single use, hashed at rest.
        let plain = codes.codes().to_vec();
        let at_rest = texts(&p, "SELECT two_factor_recovery_codes FROM platform_users WHERE two_factor_recovery_codes IS NOT NULL").await;
        let at_rest = at_rest[0].clone().unwrap();
        for c in &plain {
            assert!(
                !at_rest.contains(c.as_str()),
                "{b}: a plain recovery code at rest"
            );
            assert!(
                at_rest.contains(&sha256_hex(c.as_bytes())),
                "{b}: stored as SHA-256"
            );
        }
        assert!(
            tf.use_recovery_code(&anon, ada.id, &plain[0])
                .await
                .unwrap()
        );
        assert!(
            !tf.use_recovery_code(&anon, ada.id, &plain[0])
                .await
                .unwrap(),
            "{b}: a recovery code works once"
        );
        assert!(
            !tf.use_recovery_code(&anon, ada.id, "nope-nope")
                .await
                .unwrap()
        );
        assert!(
            !tf.use_recovery_code(&anon, bob.id, &plain[1])
                .await
                .unwrap(),
            "{b}: only for its own user"
        );
        assert!(
            tf.use_recovery_code(&anon, ada.id, &format!(" {} ", plain[1]))
                .await
                .unwrap()
        );
        assert_eq!(tf.recovery_codes_left(ada.id).await.unwrap(), 6);

        // Regenerate: the old codes stop working.
        let fresh = tf.regenerate_recovery_codes(&me, ada.id).await.unwrap();
        assert_eq!(fresh.codes().len(), 8);
        assert!(fresh.codes().iter().all(|c| !plain.contains(c)));
        assert!(
            !tf.use_recovery_code(&anon, ada.id, &plain[2])
                .await
                .unwrap(),
            "{b}"
        );
        assert!(
            tf.use_recovery_code(&anon, ada.id, &fresh.codes()[0])
                .await
                .unwrap()
        );
        assert!(
            matches!(
                tf.regenerate_recovery_codes(&as_user(&p, bob.id).await, bob.id)
                    .await,
                Err(Error::Conflict { .. })
            ),
            "{b}: bob has no 2FA"
        );

        // Disable: everything erased; sign-in is one step again.
        assert!(matches!(
            tf.disable(&as_user(&p, bob.id).await, ada.id).await,
            Err(Error::PermissionDenied { .. })
        ));
        tf.disable(&me, ada.id).await.unwrap();
        assert!(!tf.is_enabled(ada.id).await.unwrap());
        let row = p
            .db()
            .fetch_all(
                Sql::literal(
                    p.db().backend(),
                    "SELECT two_factor_secret, two_factor_recovery_codes, two_factor_confirmed_at, two_factor_last_step FROM platform_users WHERE email = 'ada@example.com'",
                ),
                &[FieldType::Text, FieldType::Text, FieldType::DateTime, FieldType::I64],
            )
            .await
            .unwrap();
        assert!(row[0].iter().all(Value::is_null), "{b}: {row:?}");
        assert!(matches!(
            auth.attempt_login(&anon, "ada@example.com", PASSWORD)
                .await
                .unwrap(),
            LoginOutcome::Success(_)
        ));
        assert!(
            !tf.verify_code(&anon, ada.id, &code_at(&secret, now_secs() + 30).unwrap())
                .await
                .unwrap()
        );
        assert!(
            !tf.use_recovery_code(&anon, ada.id, &fresh.codes()[1])
                .await
                .unwrap()
        );

        let events = events_for(&p, ada.id).await;
        for e in [
            "two_factor_setup_started",
            "two_factor_enabled",
            "recovery_code_used",
            "recovery_codes_regenerated",
            "two_factor_disabled",
        ] {
            assert!(events.iter().any(|x| x == e), "{b}: {e} not in {events:?}");
        }
        let mut secrets = vec![secret, stored, confirm_code, next, token];
        secrets.extend(plain.iter().cloned());
        secrets.extend(plain.iter().map(|c| sha256_hex(c.as_bytes())));
        secrets.extend(fresh.codes().iter().cloned());
        assert_no_secrets(&audit_dump(&p).await, &secrets, b);
    }
}

#[tokio::test]
async fn two_factor_codes_are_throttled_per_user() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = platform(&db).await;
        let tf = p.auth().two_factor();
        let ada = make_user(&p, "ada@example.com").await;
        let me = as_user(&p, ada.id).await;
        let secret = tf.begin_setup(&me, ada.id).await.unwrap().secret_base32;
        tf.confirm_setup(&me, ada.id, &code_at(&secret, now_secs()).unwrap())
            .await
            .unwrap(); // 1 of 5
        let anon = from_ip("10.3.0.1");
        let wrong = wrong_code(&secret);
        for _ in 0..3 {
            assert!(!tf.verify_code(&anon, ada.id, &wrong).await.unwrap());
        }
        assert!(
            !tf.use_recovery_code(&anon, ada.id, "guess-guess")
                .await
                .unwrap()
        ); // 5 of 5
        let err = tf
            .verify_code(&anon, ada.id, &code_at(&secret, now_secs() + 30).unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.for_field("code").any(|f| f.code == "throttled")),
            "{b}: the 6th code attempt is throttled, right or wrong: {err:?}"
        );
        let err = tf.use_recovery_code(&anon, ada.id, "x").await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.for_field("recovery_code").any(|f| f.code == "throttled")),
            "{b}: {err:?}"
        );
    }
}

// ---- password reset ----------------------------------------------------------

#[tokio::test]
async fn password_reset_is_single_use_and_expires() {
    for db in all_backends().await {
        let b = db.backend.name();
        let (p, mailer) = platform_with(&db, AuthConfig::default()).await;
        let auth = p.auth();
        let ada = make_user(&p, "ada@example.com").await;
        let anon = from_ip("10.4.0.1");

        assert!(
            auth.request_password_reset(&anon, "nobody@example.com")
                .await
                .unwrap()
                .is_none(),
            "{b}: unknown e-mails get nothing, silently"
        );
        let reset = auth
            .request_password_reset(&anon, "ADA@example.com")
            .await
            .unwrap()
            .expect("a token for a known address");
        assert_eq!(reset.user.id, ada.id);
        assert!(!format!("{reset:?}").contains(&reset.token));
        assert!(reset.expires_at > Utc::now() + chrono::Duration::minutes(59));
        assert!(reset.expires_at <= Utc::now() + chrono::Duration::minutes(60));
        // The caller mails the link.
        p.mailer()
            .send(&Mail::new(
                &reset.user.email,
                "Reset your password",
                format!("https://panel.example.com/reset-password/{}", reset.token),
            ))
            .await
            .unwrap();
        assert!(
            mailer
                .last_to("ada@example.com")
                .unwrap()
                .text
                .contains(&reset.token)
        );
        // Stored hashed.
        let stored = texts(&p, "SELECT token_hash FROM platform_password_resets").await;
        assert_eq!(
            stored,
            vec![Some(sha256_hex(reset.token.as_bytes()))],
            "{b}"
        );

        // A session that must end with the reset.
        let sessions = auth.sessions();
        let (_, mut s) = sessions.start(anon.ip(), None).await.unwrap();
        let live = sessions.login(&anon, &mut s, ada.id).await.unwrap();

        // Forged, then a weak password (which leaves the token usable).
        let forged = format!("{}x", &reset.token[..reset.token.len() - 1]);
        for bad in [forged.as_str(), "", "short"] {
            let err = auth
                .reset_password(&anon, bad, "a brand new secret")
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Validation(e) if e.has("token")),
                "{b}: {err:?}"
            );
        }
        let err = auth
            .reset_password(&anon, &reset.token, "short")
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::Validation(e) if e.has("password") && !e.has("token")));

        let user = auth
            .reset_password(&anon, &reset.token, "a brand new secret")
            .await
            .unwrap();
        assert_eq!(user.id, ada.id);
        assert!(
            sessions.load(&live).await.unwrap().is_none(),
            "{b}: sessions end on reset"
        );
        let hash = texts(&p, "SELECT password_hash FROM platform_users").await;
        assert!(hash[0].as_deref().unwrap().starts_with("$argon2id$"));
        assert!(matches!(
            auth.attempt_login(
                &from_ip("10.4.0.2"),
                "ada@example.com",
                "a brand new secret"
            )
            .await
            .unwrap(),
            LoginOutcome::Success(_)
        ));
        assert_eq!(
            auth.attempt_login(&from_ip("10.4.0.2"), "ada@example.com", PASSWORD)
                .await
                .unwrap(),
            LoginOutcome::Failed
        );

        // Used: refused with the same message as forged.
        let err = auth
            .reset_password(&anon, &reset.token, "another new secret")
            .await
            .unwrap_err();
        let Error::Validation(e) = &err else {
            panic!("{b}: {err:?}")
        };
        assert_eq!(
            e.for_field("token").next().unwrap().message,
            platform_core::auth::RESET_INVALID_MESSAGE
        );

        // A newer request voids the older token; an expired one is refused.
        let first = auth
            .request_password_reset(&anon, "ada@example.com")
            .await
            .unwrap()
            .unwrap();
        let second = auth
            .request_password_reset(&anon, "ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert!(
            auth.reset_password(&anon, &first.token, "yet another secret")
                .await
                .is_err(),
            "{b}: superseded"
        );
        let mut q = p.db().sql();
        q.push("UPDATE platform_password_resets SET expires_at = ")
            .bind(
                Value::DateTime(Utc::now() - chrono::Duration::minutes(1)),
                FieldType::DateTime,
            )
            .push(" WHERE token_hash = ")
            .bind_str(sha256_hex(second.token.as_bytes()));
        assert_eq!(p.db().execute(q).await.unwrap(), 1);
        let err = auth
            .reset_password(&anon, &second.token, "yet another secret")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.has("token")),
            "{b}: expired: {err:?}"
        );

        // Throttled per e-mail and address (3 requests above from this one
        // address for ada, 1 for nobody).
        auth.request_password_reset(&anon, "ada@example.com")
            .await
            .unwrap();
        auth.request_password_reset(&anon, "ada@example.com")
            .await
            .unwrap();
        let err = auth
            .request_password_reset(&anon, "ada@example.com")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.for_field("email").any(|f| f.code == "throttled")),
            "{b}: {err:?}"
        );

        // A disabled account gets nothing.
        disable_user(&p, ada.id).await;
        assert!(
            auth.request_password_reset(&from_ip("10.4.0.9"), "ada@example.com")
                .await
                .unwrap()
                .is_none()
        );

        let events = events_for(&p, ada.id).await;
        assert!(events.contains(&"password_reset_requested".to_owned()));
        assert!(events.contains(&"password_reset".to_owned()), "{events:?}");
        assert_no_secrets(
            &audit_dump(&p).await,
            &[
                reset.token.clone(),
                sha256_hex(reset.token.as_bytes()),
                first.token,
                second.token,
                "a brand new secret".into(),
                live,
            ],
            b,
        );
    }
}

// ---- e-mail verification -----------------------------------------------------

#[tokio::test]
async fn email_verification_links_are_signed_and_expire() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = platform(&db).await;
        let auth = p.auth();
        let ada = make_user(&p, "ada@example.com").await;
        let bob = make_user(&p, "bob@example.com").await;
        let anon = from_ip("10.5.0.1");
        assert!(ada.email_verified_at.is_none());

        let link = auth.email_verification(&ada);
        assert!(link.expires > Utc::now().timestamp() + 3500);
        let invalid =
            |r: Result<(), Error>| matches!(r, Err(Error::Validation(ref e)) if e.has("signature"));
        // Forged signature, other user, other e-mail, later expiry.
        let mut forged = link.signature.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        assert!(
            invalid(
                auth.verify_email(&anon, ada.id, &link.email, link.expires, &forged)
                    .await
            ),
            "{b}"
        );
        assert!(invalid(
            auth.verify_email(&anon, bob.id, &link.email, link.expires, &link.signature)
                .await
        ));
        assert!(invalid(
            auth.verify_email(
                &anon,
                ada.id,
                "bob@example.com",
                link.expires,
                &link.signature
            )
            .await
        ));
        assert!(invalid(
            auth.verify_email(
                &anon,
                ada.id,
                &link.email,
                link.expires + 3600,
                &link.signature
            )
            .await
        ));
        assert!(invalid(
            auth.verify_email(&anon, ada.id, &link.email, link.expires, "")
                .await
        ));
        // Expired, though correctly signed.
        let past = Utc::now().timestamp() - 10;
        let sig = auth.verification_signature(ada.id, &ada.email, past);
        assert!(
            invalid(
                auth.verify_email(&anon, ada.id, &ada.email, past, &sig)
                    .await
            ),
            "{b}"
        );
        assert!(
            p.access()
                .user(ada.id)
                .await
                .unwrap()
                .unwrap()
                .email_verified_at
                .is_none(),
            "{b}: nothing verified so far"
        );

        // The real link.
        auth.verify_email(&anon, ada.id, &link.email, link.expires, &link.signature)
            .await
            .unwrap();
        assert!(
            p.access()
                .user(ada.id)
                .await
                .unwrap()
                .unwrap()
                .email_verified_at
                .is_some()
        );
        auth.verify_email(&anon, ada.id, &link.email, link.expires, &link.signature)
            .await
            .expect("verifying twice is fine");
        let events = events_for(&p, ada.id).await;
        assert_eq!(
            events.iter().filter(|e| *e == "email_verified").count(),
            1,
            "{b}: {events:?}"
        );
        // A link for an address the user no longer has stops working.
        let stale = auth.email_verification(&bob);
        auth.update_profile(
            &as_user(&p, bob.id).await,
            bob.id,
            ProfileUpdate {
                name: "Bob".into(),
                email: "robert@example.com".into(),
            },
        )
        .await
        .unwrap();
        assert!(
            invalid(
                auth.verify_email(&anon, bob.id, &stale.email, stale.expires, &stale.signature)
                    .await
            ),
            "{b}"
        );
        assert_no_secrets(&audit_dump(&p).await, &[link.signature, stale.signature], b);
    }
}

// ---- password confirmation, profile, password change -------------------------

#[tokio::test]
async fn password_confirmation_is_recorded_in_the_session() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = platform(&db).await;
        let auth = p.auth();
        let sessions = auth.sessions();
        let ada = make_user(&p, "ada@example.com").await;
        let ctx = from_ip("10.6.0.1");
        let (_, mut anon_session) = sessions.start(ctx.ip(), None).await.unwrap();
        assert!(matches!(
            auth.confirm_password(&mut anon_session, PASSWORD).await,
            Err(Error::Unauthenticated)
        ));
        let (_, mut s) = sessions.start(ctx.ip(), None).await.unwrap();
        let token = sessions.login(&ctx, &mut s, ada.id).await.unwrap();
        assert!(!s.password_recently_confirmed());
        assert!(
            auth.confirm_password(&mut s, "wrong password")
                .await
                .unwrap()
                .is_none()
        );
        assert!(!s.password_recently_confirmed(), "{b}");
        assert!(sessions.load(&token).await.unwrap().is_some(), "{b}");
        // Confirmed: the session rotates (a privilege change); the old token
        // is dead, the new one carries the confirmation and the same CSRF
        // token.
        let csrf = s.csrf_token().to_owned();
        let old = token;
        let token = auth
            .confirm_password(&mut s, PASSWORD)
            .await
            .unwrap()
            .expect("confirmed");
        assert_ne!(token, old);
        assert!(s.password_recently_confirmed());
        assert!(
            sessions.load(&old).await.unwrap().is_none(),
            "{b}: the old id is dead"
        );
        let reloaded = sessions.load(&token).await.unwrap().unwrap();
        assert!(reloaded.password_recently_confirmed(), "{b}: persisted");
        assert_eq!(reloaded.user_id(), Some(ada.id));
        assert_eq!(reloaded.csrf_token(), csrf);
        // 20 minutes later it no longer counts (default 15).
        let mut q = p.db().sql();
        q.push("UPDATE platform_sessions SET password_confirmed_at = ")
            .bind(
                Value::DateTime(Utc::now() - chrono::Duration::minutes(20)),
                FieldType::DateTime,
            )
            .push(" WHERE id = ")
            .bind_str(sha256_hex(token.as_bytes()));
        p.db().execute(q).await.unwrap();
        assert!(
            !sessions
                .load(&token)
                .await
                .unwrap()
                .unwrap()
                .password_recently_confirmed()
        );
        // Throttled: 5 per minute per user (2 used).
        for _ in 0..3 {
            assert!(
                auth.confirm_password(&mut s, "wrong password")
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        let err = auth.confirm_password(&mut s, PASSWORD).await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.for_field("password").any(|f| f.code == "throttled")),
            "{b}: {err:?}"
        );
    }
}

#[tokio::test]
async fn profile_and_password_changes_are_validated_and_audited() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = platform(&db).await;
        let auth = p.auth();
        let sessions = auth.sessions();
        let ada = make_user(&p, "ada@example.com").await;
        let bob = make_user(&p, "bob@example.com").await;
        let me = as_user(&p, ada.id).await;

        // Verified first, so the change below must clear it.
        let link = auth.email_verification(&ada);
        auth.verify_email(&me, ada.id, &link.email, link.expires, &link.signature)
            .await
            .unwrap();

        // Validation, all at once; a taken address.
        let err = auth
            .update_profile(
                &me,
                ada.id,
                ProfileUpdate {
                    name: " ".into(),
                    email: "not an address".into(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.has("name") && e.has("email")),
            "{b}: {err:?}"
        );
        let err = auth
            .update_profile(
                &me,
                ada.id,
                ProfileUpdate {
                    name: "Ada".into(),
                    email: "BOB@example.com".into(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.for_field("email").any(|f| f.code == "unique")),
            "{b}: {err:?}"
        );
        assert!(matches!(
            auth.update_profile(
                &as_user(&p, bob.id).await,
                ada.id,
                ProfileUpdate {
                    name: "Mallory".into(),
                    email: "ada@example.com".into()
                }
            )
            .await,
            Err(Error::PermissionDenied { .. })
        ));

        // Name only: verification stays.
        let u = auth
            .update_profile(
                &me,
                ada.id,
                ProfileUpdate {
                    name: "Ada Lovelace".into(),
                    email: "ada@example.com".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(u.name, "Ada Lovelace");
        assert!(u.email_verified_at.is_some(), "{b}");
        // A new address clears it.
        let u = auth
            .update_profile(
                &me,
                ada.id,
                ProfileUpdate {
                    name: "Ada Lovelace".into(),
                    email: "Countess@Example.com".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(u.email, "countess@example.com");
        assert!(
            u.email_verified_at.is_none(),
            "{b}: a changed e-mail is unverified"
        );

        // Password change: three sessions, keep the current one.
        let ctx = from_ip("10.7.0.1");
        let mut tokens = Vec::new();
        for _ in 0..3 {
            let (_, mut s) = sessions.start(ctx.ip(), None).await.unwrap();
            tokens.push(sessions.login(&ctx, &mut s, ada.id).await.unwrap());
        }
        let err = auth
            .change_password(
                &me,
                ada.id,
                PasswordChange {
                    current_password: "wrong password".into(),
                    password: "short".into(),
                },
                Some(&tokens[0]),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.has("current_password") && e.has("password")),
            "{b}: {err:?}"
        );
        assert_eq!(
            sessions.count_for_user(ada.id).await.unwrap(),
            3,
            "{b}: nothing changed"
        );
        let rotated = auth
            .change_password(
                &me,
                ada.id,
                PasswordChange {
                    current_password: PASSWORD.into(),
                    password: "an entirely new one".into(),
                },
                Some(&tokens[0]),
            )
            .await
            .unwrap()
            .expect("the kept session is rotated");
        assert_ne!(rotated, tokens[0]);
        assert_eq!(
            sessions
                .load(&rotated)
                .await
                .unwrap()
                .and_then(|s| s.user_id()),
            Some(ada.id),
            "{b}: kept, under a new id"
        );
        assert!(
            sessions.load(&tokens[0]).await.unwrap().is_none(),
            "{b}: the old id is dead"
        );
        assert!(
            sessions.load(&tokens[1]).await.unwrap().is_none(),
            "{b}: ended"
        );
        assert!(
            sessions.load(&tokens[2]).await.unwrap().is_none(),
            "{b}: ended"
        );
        assert!(matches!(
            auth.attempt_login(&ctx, "countess@example.com", "an entirely new one")
                .await
                .unwrap(),
            LoginOutcome::Success(_)
        ));
        assert!(matches!(
            auth.change_password(
                &as_user(&p, bob.id).await,
                ada.id,
                PasswordChange {
                    current_password: "an entirely new one".into(),
                    password: "bob was here!".into(),
                },
                None,
            )
            .await,
            Err(Error::PermissionDenied { .. })
        ));

        let events = events_for(&p, ada.id).await;
        assert!(
            events.iter().filter(|e| *e == "profile_updated").count() == 2,
            "{b}: {events:?}"
        );
        assert!(
            events.contains(&"password_changed".to_owned()),
            "{events:?}"
        );
        assert_no_secrets(
            &audit_dump(&p).await,
            &[
                PASSWORD.into(),
                "an entirely new one".into(),
                tokens[0].clone(),
                tokens[1].clone(),
            ],
            b,
        );
    }
}

// ---- registration ------------------------------------------------------------

#[tokio::test]
async fn registration_is_off_by_default() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = platform(&db).await;
        assert!(!p.auth().config().registration);
        let input = NewUser {
            email: "new@example.com".into(),
            name: "New".into(),
            password: PASSWORD.into(),
        };
        assert!(
            matches!(
                p.auth().register(&from_ip("10.8.0.1"), input.clone()).await,
                Err(Error::Unsupported(_))
            ),
            "{b}"
        );
        assert!(
            p.access()
                .find_user_by_email("new@example.com")
                .await
                .unwrap()
                .is_none()
        );
        drop(p);

        let (p, _) = platform_with(
            &db,
            AuthConfig {
                registration: true,
                ..AuthConfig::default()
            },
        )
        .await;
        let u = p
            .auth()
            .register(&from_ip("10.8.0.1"), input)
            .await
            .unwrap();
        assert_eq!(u.email, "new@example.com");
        let err = p
            .auth()
            .register(
                &from_ip("10.8.0.1"),
                NewUser {
                    email: "new@example.com".into(),
                    name: "Again".into(),
                    password: PASSWORD.into(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.has("email")),
            "{b}: {err:?}"
        );
        assert_no_secrets(&audit_dump(&p).await, &[PASSWORD.into()], b);
    }
}

// ---- notifications and preferences -------------------------------------------

#[tokio::test]
async fn notifications_and_preferences() {
    for db in all_backends().await {
        let b = db.backend.name();
        let p = platform(&db).await;
        let n = p.notifications();
        let ada = make_user(&p, "ada@example.com").await;
        let bob = make_user(&p, "bob@example.com").await;

        let first = n
            .send(ada.id, Notice::new("Export ready", "invoices.xlsx"))
            .await
            .unwrap();
        let second = n
            .send(
                ada.id,
                Notice::new("Import failed", "row 3: bad date")
                    .with_level(Level::Danger)
                    .with_url("/admin/imports/7"),
            )
            .await
            .unwrap();
        n.send(bob.id, Notice::new("Hi Bob", "")).await.unwrap();
        let third = n.send(ada.id, Notice::new("Third", "x")).await.unwrap();
        assert_eq!(n.count_unread(ada.id).await.unwrap(), 3, "{b}");
        let unread = n.unread(ada.id, 10).await.unwrap();
        assert_eq!(
            unread.iter().map(|x| x.id).collect::<Vec<_>>(),
            vec![third, second, first],
            "{b}: newest first"
        );
        assert_eq!(unread[1].level, Level::Danger);
        assert_eq!(unread[1].url.as_deref(), Some("/admin/imports/7"));
        assert_eq!(n.unread(ada.id, 2).await.unwrap().len(), 2);

        assert!(!n.mark_read(bob.id, first).await.unwrap(), "{b}: not bob's");
        assert!(n.mark_read(ada.id, first).await.unwrap());
        assert!(!n.mark_read(ada.id, first).await.unwrap(), "already read");
        assert_eq!(n.count_unread(ada.id).await.unwrap(), 2);
        assert_eq!(n.mark_all_read(ada.id).await.unwrap(), 2);
        assert_eq!(n.count_unread(ada.id).await.unwrap(), 0);
        assert_eq!(
            n.count_unread(bob.id).await.unwrap(),
            1,
            "{b}: bob's untouched"
        );
        // The count is cached: a row written around the service shows in
        // a service with another cache (another process without a shared
        // cache) at once, in this one after its next write for bob (or the
        // TTL).
        let mut raw = p.db().sql();
        raw.push(
            "INSERT INTO platform_notifications (user_id, title, body, level, created_at) VALUES (",
        )
        .bind_i64(bob.id)
        .push(", 'raw', '', 'info', ")
        .bind(Value::DateTime(chrono::Utc::now()), FieldType::DateTime)
        .push(")");
        p.db().execute(raw).await.unwrap();
        assert_eq!(n.count_unread(bob.id).await.unwrap(), 1, "{b}: cached");
        let other = platform_core::notification::Notifications::new(
            p.db().clone(),
            platform_core::cache::Cache::new(
                std::sync::Arc::new(platform_core::cache::MemoryStore::default()),
                "other:",
            ),
        );
        assert_eq!(other.count_unread(bob.id).await.unwrap(), 2, "{b}");
        n.send(bob.id, Notice::new("Again", "")).await.unwrap();
        assert_eq!(
            n.count_unread(bob.id).await.unwrap(),
            3,
            "{b}: dropped by the send"
        );
        let all = n.latest(ada.id, 10).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|x| x.read_at.is_some()));

        let err = n.send(ada.id, Notice::new(" ", "x")).await.unwrap_err();
        assert!(matches!(&err, Error::Validation(e) if e.has("title")));
        assert!(
            matches!(
                n.send(999_999, Notice::new("x", "y")).await,
                Err(Error::NotFound { .. })
            ),
            "{b}: unknown user"
        );

        // Preferences.
        assert_eq!(
            n.get_preference(ada.id, "invoices.columns").await.unwrap(),
            None
        );
        let cols = serde_json::json!({ "number": true, "notes": false });
        n.set_preference(ada.id, "invoices.columns", &cols)
            .await
            .unwrap();
        assert_eq!(
            n.get_preference(ada.id, "invoices.columns").await.unwrap(),
            Some(cols)
        );
        let cols2 = serde_json::json!(["number", "total"]);
        n.set_preference(ada.id, "invoices.columns", &cols2)
            .await
            .unwrap();
        assert_eq!(
            n.get_preference(ada.id, "invoices.columns").await.unwrap(),
            Some(cols2.clone()),
            "{b}: overwritten"
        );
        assert_eq!(
            n.get_preference(bob.id, "invoices.columns").await.unwrap(),
            None
        );
        let big = serde_json::json!("x".repeat(16 * 1024));
        let err = n.set_preference(ada.id, "big", &big).await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.has("value")),
            "{b}: {err:?}"
        );
        let just_fits = serde_json::json!("x".repeat(16 * 1024 - 2));
        n.set_preference(ada.id, "big", &just_fits).await.unwrap();
        assert!(n.set_preference(ada.id, "", &cols2).await.is_err());
        assert!(n.forget_preference(ada.id, "big").await.unwrap());
        assert_eq!(n.get_preference(ada.id, "big").await.unwrap(), None);
        assert!(
            matches!(
                n.set_preference(999_999, "x", &cols2).await,
                Err(Error::NotFound { .. })
            ),
            "{b}"
        );
    }
}

// ---- security events: bounded, no secret --------------------------------------

/// How many entries of `event` the audit trail holds.
async fn count_events(p: &Platform, event: &str) -> usize {
    let mut q = p.db().sql();
    q.push("SELECT COUNT(*) FROM platform_audits WHERE event = ")
        .bind_str(event);
    usize::try_from(p.db().fetch_i64(q).await.unwrap().unwrap_or(0)).unwrap()
}

#[tokio::test]
async fn security_events_cannot_flood_the_audit_trail() {
    use platform_core::auth::security_events::{PER_ADDRESS, PER_CLIENT};
    for db in all_backends().await {
        let b = db.backend.name();
        // No throttle: the recorder alone bounds what is written.
        let (p, _) = platform_with(
            &db,
            AuthConfig {
                throttle: ThrottleConfig::off(),
                ..AuthConfig::default()
            },
        )
        .await;
        let auth = p.auth();
        let ada = make_user(&p, "ada@example.com").await;
        let ctx = from_ip("10.8.0.1");
        for i in 0..20 {
            let wrong = format!("wrong password {i}");
            assert_eq!(
                auth.attempt_login(&ctx, "ada@example.com", &wrong)
                    .await
                    .unwrap(),
                LoginOutcome::Failed
            );
        }
        let ada_failed = events_for(&p, ada.id)
            .await
            .iter()
            .filter(|e| *e == "login_failed")
            .count();
        assert_eq!(
            ada_failed, PER_ADDRESS as usize,
            "{b}: one account, one address"
        );
        // A spray over many addresses from one client.
        for i in 0..40 {
            auth.attempt_login(&ctx, &format!("nobody{i}@example.com"), "x")
                .await
                .unwrap();
        }
        assert_eq!(
            count_events(&p, "login_failed").await,
            PER_CLIENT as usize,
            "{b}: one client over many accounts"
        );
        // Two-factor codes, wrong 30 times.
        let tf = auth.two_factor();
        let me = as_user(&p, ada.id).await;
        let setup = tf.begin_setup(&me, ada.id).await.unwrap();
        let code = code_at(
            &setup.secret_base32,
            u64::try_from(Utc::now().timestamp()).unwrap(),
        )
        .unwrap();
        tf.confirm_setup(&me, ada.id, &code).await.unwrap();
        let ctx = from_ip("10.8.0.2");
        for _ in 0..30 {
            assert!(!tf.verify_code(&ctx, ada.id, "999999x").await.unwrap());
            assert!(
                !tf.use_recovery_code(&ctx, ada.id, "no-such-code-at-all")
                    .await
                    .unwrap()
            );
        }
        assert_eq!(
            count_events(&p, "two_factor_failed").await,
            PER_ADDRESS as usize,
            "{b}"
        );
        assert_eq!(
            count_events(&p, "recovery_code_failed").await,
            PER_ADDRESS as usize,
            "{b}"
        );

        // Locked out: one entry per account and address a minute, however
        // many attempts.
        let (p, _) = platform_with(
            &db,
            AuthConfig {
                throttle: ThrottleConfig {
                    login: Limit {
                        max: 1,
                        per: Duration::from_secs(3600),
                    },
                    two_factor: Limit {
                        max: 1,
                        per: Duration::from_secs(3600),
                    },
                    ..ThrottleConfig::off()
                },
                ..AuthConfig::default()
            },
        )
        .await;
        let auth = p.auth();
        let ctx = from_ip("10.8.0.3");
        auth.attempt_login(&ctx, "ada@example.com", "wrong")
            .await
            .unwrap();
        for _ in 0..100 {
            assert!(matches!(
                auth.attempt_login(&ctx, "ada@example.com", "wrong")
                    .await
                    .unwrap(),
                LoginOutcome::Throttled { .. }
            ));
        }
        tf_locked_out(&p, ada.id, &ctx).await;
        let locked: Vec<String> = events_for(&p, ada.id)
            .await
            .into_iter()
            .filter(|e| e == "locked_out")
            .collect();
        assert_eq!(
            locked.len(),
            2,
            "{b}: one for the sign-in, one for the codes"
        );
        let dump = audit_dump(&p).await;
        assert!(dump.contains("\"step\":\"sign_in\""), "{b}: {dump}");
        assert!(dump.contains("\"step\":\"two_factor\""), "{b}: {dump}");
        assert_no_secrets(
            &dump,
            &[
                "wrong password".to_owned(),
                "999999x".to_owned(),
                "no-such-code-at-all".to_owned(),
                "nobody1@example.com".to_owned(),
            ],
            b,
        );
    }
}

/// 50 two-factor attempts over the limit (1 an hour).
async fn tf_locked_out(p: &Platform, user_id: i64, ctx: &Context) {
    let tf = p.auth().two_factor();
    let _ = tf.verify_code(ctx, user_id, "123456").await;
    for _ in 0..50 {
        let err = tf.verify_code(ctx, user_id, "123456").await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.for_field("code").any(|f| f.code == "throttled")),
            "{err:?}"
        );
    }
}
