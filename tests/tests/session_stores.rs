//! Sessions in a [`SessionStore`] instead of the database: the memory store
//! always, Redis (`session-redis`) when `PLATFORM_TEST_REDIS_URL` is set.
//! Every session operation of the sign-in flows works as with the table
//! (rotation on sign-in, the second factor and password confirmation,
//! sign-out, "sign out my other devices", password changes and disabled
//! accounts ending sessions), nothing is written to `platform_sessions`,
//! the audit entries still are, two nodes share sessions, and a Redis
//! server that cannot be reached is a clear error, not a signed-out user.

use std::net::IpAddr;
use std::sync::Arc;

use platform_adapters::redis::RedisSessionStore;
use platform_core::Platform;
use platform_core::access::{NewUser, User};
use platform_core::auth::{MemorySessionStore, PasswordChange, SessionStore};
use platform_core::context::{Actor, Context};
use platform_core::error::Error;
use platform_core::resource::Registry;
use platform_tests::{TestDb, redis_url, test_key};

const PASSWORD: &str = "correct horse battery";

async fn platform(db: &TestDb, store: Arc<dyn SessionStore>) -> Platform {
    Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .background_tasks(false)
        .max_connections(8)
        .session_store(store)
        .build()
        .await
        .unwrap()
}

fn from_ip(ip: &str) -> Context {
    Context::default()
        .with_ip(ip.parse::<IpAddr>().unwrap())
        .with_user_agent("store-test")
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

async fn count(p: &Platform, sql: &'static str) -> i64 {
    let mut q = p.db().sql();
    q.push(sql);
    p.db().fetch_i64(q).await.unwrap().unwrap_or_default()
}

/// The stores to run on: two handles each (two nodes).
async fn stores() -> Vec<(&'static str, Arc<dyn SessionStore>, Arc<dyn SessionStore>)> {
    let memory: Arc<dyn SessionStore> = Arc::new(MemorySessionStore::new());
    let mut out = vec![("memory", memory.clone(), memory)];
    if let Some(url) = redis_url() {
        let prefix = format!("sessions-{}:", platform_core::backplane::new_sender_id());
        let a = RedisSessionStore::connect_with_prefix(&url, &prefix)
            .await
            .unwrap();
        let b = RedisSessionStore::connect_with_prefix(&url, &prefix)
            .await
            .unwrap();
        out.push(("redis", Arc::new(a), Arc::new(b)));
    }
    out
}

#[tokio::test]
async fn the_sign_in_flows_work_with_sessions_in_a_store() {
    for (name, store_a, store_b) in stores().await {
        let db = TestDb::sqlite();
        let a = platform(&db, store_a).await;
        // A second node on the same database and store.
        let b = platform(&db, store_b).await;
        let (sa, sb) = (a.auth().sessions(), b.auth().sessions());
        let ctx = from_ip("10.0.0.1");
        let ada = make_user(&a, "ada@example.com").await;

        // Anonymous, then signed in: rotated, seen by the other node.
        let (token, mut s) = sa.start(ctx.ip(), Some("store-test")).await.unwrap();
        let csrf = s.csrf_token().to_owned();
        let on_b = sb.load(&token).await.unwrap().expect("B loads A's session");
        assert_eq!(on_b.csrf_token(), csrf, "{name}");
        s.flash("status", "Welcome back");
        s.data.insert("theme", "dark");
        sa.save(&s).await.unwrap();
        let mut s = sb.load(&token).await.unwrap().unwrap();
        assert_eq!(s.data.get::<String>("theme").as_deref(), Some("dark"));
        let signed_in = sb.login(&ctx, &mut s, ada.id).await.unwrap();
        assert!(sa.load(&token).await.unwrap().is_none(), "{name}: fixation");
        let mut s = sa.load(&signed_in).await.unwrap().expect("signed in");
        assert_eq!(s.user_id(), Some(ada.id));
        assert_eq!(s.user().map(|u| u.email.as_str()), Some("ada@example.com"));
        assert_ne!(s.csrf_token(), csrf);
        assert_eq!(s.take_flash().len(), 1, "{name}: flash survives sign-in");
        assert_eq!(s.data.get::<String>("theme"), None);
        assert_eq!(
            count(&a, "SELECT COUNT(*) FROM platform_sessions").await,
            0,
            "{name}: nothing in the table"
        );

        // The password step of a two-factor sign-in rotates too.
        let (t2, mut s2) = sa.start(ctx.ip(), None).await.unwrap();
        let t2b = sa.begin_two_factor(&mut s2, ada.id).await.unwrap();
        assert!(sb.load(&t2).await.unwrap().is_none());
        let s2 = sb.load(&t2b).await.unwrap().unwrap();
        assert_eq!(s2.pending_login(), Some(ada.id), "{name}");
        assert!(!s2.is_authenticated());

        // Password confirmation: recorded, rotated.
        let mut s = sb.load(&signed_in).await.unwrap().unwrap();
        assert!(!s.password_recently_confirmed());
        assert_eq!(
            b.auth().confirm_password(&mut s, "wrong").await.unwrap(),
            None
        );
        let confirmed = b
            .auth()
            .confirm_password(&mut s, PASSWORD)
            .await
            .unwrap()
            .expect("confirmed");
        assert!(sa.load(&signed_in).await.unwrap().is_none(), "{name}");
        let s = sa.load(&confirmed).await.unwrap().unwrap();
        assert!(s.password_recently_confirmed(), "{name}");
        let mut stale = s.clone();
        let rotated = sa.rotate(&mut stale.clone()).await.unwrap();
        assert!(
            matches!(sa.rotate(&mut stale).await, Err(Error::Unauthenticated)),
            "{name}: a rotated-away session is not rotated again"
        );

        // Other devices: counted, ended but one, by the user themself.
        let mut others = Vec::new();
        for _ in 0..3 {
            let (_, mut o) = sa.start(ctx.ip(), None).await.unwrap();
            others.push(sa.login(&ctx, &mut o, ada.id).await.unwrap());
        }
        assert_eq!(sb.count_for_user(ada.id).await.unwrap(), 4, "{name}");
        let ended = sb
            .destroy_user_sessions(&as_user(&b, ada.id).await, ada.id, Some(&rotated))
            .await
            .unwrap();
        assert_eq!(ended, 3, "{name}");
        for t in &others {
            assert!(sa.load(t).await.unwrap().is_none(), "{name}");
        }
        assert!(sa.load(&rotated).await.unwrap().is_some());

        // A password change ends the others and moves the current one.
        let (_, mut o) = sa.start(ctx.ip(), None).await.unwrap();
        let other = sa.login(&ctx, &mut o, ada.id).await.unwrap();
        let moved = a
            .auth()
            .change_password(
                &as_user(&a, ada.id).await,
                ada.id,
                PasswordChange {
                    current_password: PASSWORD.into(),
                    password: "another long passphrase".into(),
                },
                Some(&rotated),
            )
            .await
            .unwrap()
            .expect("the current session moves");
        assert!(sb.load(&other).await.unwrap().is_none(), "{name}");
        assert!(sb.load(&rotated).await.unwrap().is_none(), "{name}");
        assert_eq!(
            sb.load(&moved).await.unwrap().and_then(|s| s.user_id()),
            Some(ada.id)
        );

        // Sign-out, then a disabled account's sessions end.
        sb.logout(&ctx, &moved).await.unwrap();
        assert!(sa.load(&moved).await.unwrap().is_none(), "{name}");
        let (_, mut o) = sa.start(ctx.ip(), None).await.unwrap();
        let last = sa.login(&ctx, &mut o, ada.id).await.unwrap();
        let admin = make_user(&a, "admin@example.com").await;
        a.access()
            .assign_role(&Context::console(), admin.id, "super_admin")
            .await
            .unwrap();
        a.auth()
            .set_disabled(&as_user(&a, admin.id).await, ada.id, true)
            .await
            .unwrap();
        assert!(sb.load(&last).await.unwrap().is_none(), "{name}: disabled");
        assert_eq!(sb.count_for_user(ada.id).await.unwrap(), 0, "{name}");

        // The audit entries are in the database, as without a store.
        let logins = count(
            &a,
            "SELECT COUNT(*) FROM platform_audits WHERE event = 'login'",
        )
        .await;
        assert!(logins >= 5, "{name}: {logins} login entries");
        for event in ["logout", "sessions_revoked", "password_changed", "disabled"] {
            let mut q = a.db().sql();
            q.push("SELECT COUNT(*) FROM platform_audits WHERE event = ")
                .bind_str(event.to_owned());
            assert!(
                a.db().fetch_i64(q).await.unwrap().unwrap_or_default() >= 1,
                "{name}: {event} audited"
            );
        }
        assert_eq!(count(&a, "SELECT COUNT(*) FROM platform_sessions").await, 0);
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test]
async fn an_unreachable_session_store_is_an_error_not_a_sign_out() {
    if redis_url().is_none() {
        return;
    }
    // A Redis server started for this test and stopped half-way.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Ok(mut server) = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
    else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "redis-server must be on PATH under CI=true"
        );
        eprintln!("skipping: redis-server is not on PATH");
        return;
    };
    let own = format!("redis://127.0.0.1:{port}/0");
    let mut store = None;
    for _ in 0..100 {
        if let Ok(s) = RedisSessionStore::connect(&own).await {
            store = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let store = store.expect("the test's Redis server starts");
    let db = TestDb::sqlite();
    let p = platform(&db, Arc::new(store)).await;
    let sessions = p.auth().sessions();
    let (token, _) = sessions.start(None, None).await.unwrap();
    assert!(sessions.load(&token).await.unwrap().is_some());
    server.kill().unwrap();
    server.wait().unwrap();
    let err = sessions.load(&token).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(sessions.start(None, None).await.is_err());
    p.shutdown().await;
}
