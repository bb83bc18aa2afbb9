//! The panel's sign-in pages through the whole application router (the
//! one `serve` runs, with its security-header, access-log and allowlist
//! layers): sign-in with mandatory two-factor set-up, the challenge with
//! replay protection and recovery codes, session rotation (fixation),
//! CSRF, open redirects in `next`, throttling, password reset by mail,
//! password confirmation before the access pages, the profile page and
//! oversized posts.

use platform_tests::panel::enc;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::auth::{AuthConfig, LOGIN_FAILED_MESSAGE, Limit, ThrottleConfig, code_at};
use platform_core::context::Context;
use platform_core::mail::MemoryMailer;
use platform_tests::{TestDb, all_backends, test_key};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";
const EMAIL: &str = "ada@example.com";
/// The user agent every request of these tests sends.
const AGENT: &str = "platform-tests/1.0 (sign-in)";

struct App {
    platform: Platform,
    router: axum::Router,
    mailer: Arc<MemoryMailer>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
    /// The value of the session cookie this answer sets, if any.
    fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("platform_session="))
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
    }
    fn set_cookie_line(&self) -> String {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("platform_session="))
            .unwrap_or_default()
            .to_owned()
    }
    /// The CSRF token of the page (`<meta name="csrf-token">`).
    fn csrf(&self) -> String {
        between(&self.body, "<meta name=\"csrf-token\" content=\"", "\"")
    }
}

fn between(s: &str, start: &str, end: &str) -> String {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` not in page"))
        + start.len();
    s[i..i + s[i..].find(end).expect("end")].to_owned()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap()
}

impl App {
    async fn new(db: &TestDb) -> Self {
        Self::with_config(db, AuthConfig::default()).await
    }

    async fn with_config(db: &TestDb, config: AuthConfig) -> Self {
        Self::with_registry(db, config, platform_core::resource::Registry::default()).await
    }

    async fn with_registry(
        db: &TestDb,
        config: AuthConfig,
        registry: platform_core::resource::Registry,
    ) -> Self {
        db.create_tables(&registry).await;
        let mailer = Arc::new(MemoryMailer::new());
        let platform = Platform::builder()
            .ignore_env()
            .database_url(&db.url)
            .app_key(test_key())
            .registry(registry)
            .background_tasks(false)
            .max_connections(8)
            .auth_config(config)
            .mailer(mailer.clone())
            .build()
            .await
            .unwrap_or_else(|e| panic!("platform on {}: {e}", db.backend.name()));
        let router = platform_admin::app_router(&platform)
            .unwrap()
            .with_state(platform.clone());
        let ctx = Context::console();
        let user = platform
            .access()
            .create_user(
                &ctx,
                NewUser {
                    email: EMAIL.into(),
                    name: "Ada".into(),
                    password: PASSWORD.into(),
                },
            )
            .await
            .unwrap();
        platform
            .access()
            .assign_role(&ctx, user.id, "super_admin")
            .await
            .unwrap();
        Self {
            platform,
            router,
            mailer,
        }
    }

    async fn send(&self, req: Request<Body>) -> Page {
        let mut req = req;
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 4000))));
        if !req.headers().contains_key(header::USER_AGENT) {
            req.headers_mut()
                .insert(header::USER_AGENT, header::HeaderValue::from_static(AGENT));
        }
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, cookie: Option<&str>, path: &str) -> Page {
        let mut b = Request::get(path);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("platform_session={c}"));
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, cookie: Option<&str>, path: &str, body: String) -> Page {
        let mut b =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("platform_session={c}"));
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// A fresh anonymous session: its cookie and CSRF token.
    async fn visit_login(&self) -> (String, String) {
        let page = self.get(None, "/admin/login").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        (
            page.session_cookie().expect("a session cookie"),
            page.csrf(),
        )
    }

    async fn login(&self, cookie: &str, csrf: &str, email: &str, password: &str) -> Page {
        self.post(
            Some(cookie),
            "/admin/login",
            form(&[("_csrf", csrf), ("email", email), ("password", password)]),
        )
        .await
    }

    /// Confirms the password of a signed-in session (as the access pages
    /// ask); returns the session's new cookie (a confirmation rotates it).
    async fn confirm(&self, cookie: &str) -> String {
        self.confirm_with(cookie, PASSWORD).await
    }

    async fn confirm_with(&self, cookie: &str, password: &str) -> String {
        let page = self.get(Some(cookie), "/admin/confirm-password").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.location());
        let res = self
            .post(
                Some(cookie),
                "/admin/confirm-password",
                form(&[("_csrf", &page.csrf()), ("password", password)]),
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let rotated = res
            .session_cookie()
            .expect("a confirmation rotates the session");
        assert_ne!(rotated, cookie);
        rotated
    }

    /// Signs in with the password and sets two-factor up; returns the
    /// fully signed-in cookie, the secret and the code used.
    async fn sign_in_and_set_up(&self) -> (String, String, String) {
        self.sign_in_and_set_up_as(EMAIL, PASSWORD).await
    }

    async fn sign_in_and_set_up_as(&self, email: &str, password: &str) -> (String, String, String) {
        let (cookie, csrf) = self.visit_login().await;
        let page = self.login(&cookie, &csrf, email, password).await;
        assert_eq!(page.location(), "/admin/two-factor/setup");
        let cookie = page.session_cookie().unwrap();
        let setup = self.get(Some(&cookie), "/admin/two-factor/setup").await;
        let secret = between(&setup.body, "<code id=\"two-factor-secret\">", "<");
        let code = code_at(&secret, now()).unwrap();
        let done = self
            .post(
                Some(&cookie),
                "/admin/two-factor/setup",
                form(&[("_csrf", &setup.csrf()), ("code", &code)]),
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        (done.session_cookie().unwrap(), secret, code)
    }
}

#[tokio::test]
async fn sign_in_requires_two_factor_then_challenges_with_replay_protection() {
    for db in all_backends().await {
        // More code checks than the default 5 a minute happen here.
        let mut config = AuthConfig::default();
        config.throttle.two_factor = Limit::per_minute(20);
        let app = App::with_config(&db, config).await;
        // Every page sends a stranger to the sign-in page, keeping the path.
        let page = app.get(None, "/admin/access/users?x=1").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(
            page.location(),
            "/admin/login?next=%2Fadmin%2Faccess%2Fusers%3Fx%3D1"
        );

        // The sign-in page starts a locked-down session.
        let login = app.get(None, "/admin/login?next=%2Fadmin%2Fsearch").await;
        assert_eq!(login.status, StatusCode::OK);
        let line = login.set_cookie_line();
        for flag in ["HttpOnly", "SameSite=Lax", "Path=/admin"] {
            assert!(line.contains(flag), "{line}");
        }
        assert!(login.body.contains("name=\"next\" value=\"/admin/search\""));
        let anon = login.session_cookie().unwrap();
        let csrf = login.csrf();
        assert!(csrf.len() >= 32);

        // Wrong password and unknown account: the same answer.
        let wrong = app.login(&anon, &csrf, EMAIL, "wrong password").await;
        let unknown = app
            .login(&anon, &csrf, "nobody@example.com", PASSWORD)
            .await;
        for p in [&wrong, &unknown] {
            assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(p.body.contains(LOGIN_FAILED_MESSAGE));
        }
        assert!(wrong.body.contains(&format!("value=\"{EMAIL}\"")));

        // The right password: a new session id (the old one is dead), and
        // two-factor set-up before anything else.
        let ok = app
            .post(
                Some(&anon),
                "/admin/login",
                form(&[
                    ("_csrf", &csrf),
                    ("email", EMAIL),
                    ("password", PASSWORD),
                    ("next", "/admin/search"),
                ]),
            )
            .await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
        assert_eq!(ok.location(), "/admin/two-factor/setup");
        let half = ok.session_cookie().unwrap();
        assert_ne!(half, anon, "the session id rotates on sign-in");
        let old = app.get(Some(&anon), "/admin").await;
        assert!(old.location().starts_with("/admin/login"));
        for path in ["/admin", "/admin/access/roles", "/admin/profile"] {
            let p = app.get(Some(&half), path).await;
            assert_eq!(p.location(), "/admin/two-factor/setup", "{path}");
        }

        // The set-up page: QR code and key; a wrong code keeps the key.
        let setup = app.get(Some(&half), "/admin/two-factor/setup").await;
        assert_eq!(setup.status, StatusCode::OK);
        assert!(setup.body.contains("<svg"));
        let secret = between(&setup.body, "<code id=\"two-factor-secret\">", "<");
        let bad = app
            .post(
                Some(&half),
                "/admin/two-factor/setup",
                form(&[("_csrf", &setup.csrf()), ("code", "000000x")]),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.body.contains(&secret), "a wrong code keeps the secret");
        let code = code_at(&secret, now()).unwrap();
        let done = app
            .post(
                Some(&half),
                "/admin/two-factor/setup",
                form(&[("_csrf", &setup.csrf()), ("code", &code)]),
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        let codes: Vec<String> = done
            .body
            .split("<li><code>")
            .skip(1)
            .map(|s| s[..s.find('<').unwrap()].to_owned())
            .collect();
        assert_eq!(codes.len(), 8);
        assert!(
            done.body
                .contains("id=\"continue\" class=\"button primary\" href=\"/admin/search\"")
        );
        let full = done.session_cookie().unwrap();
        assert_ne!(full, half);
        let dash = app.get(Some(&full), "/admin").await;
        assert_eq!(dash.status, StatusCode::OK, "{}", dash.location());

        // Sign out: the session is gone.
        let out = app
            .post(
                Some(&full),
                "/admin/logout",
                form(&[("_csrf", &dash.csrf())]),
            )
            .await;
        assert_eq!(out.location(), "/admin/login");
        assert!(out.set_cookie_line().contains("Max-Age=0"));
        assert!(
            app.get(Some(&full), "/admin")
                .await
                .location()
                .starts_with("/admin/login")
        );

        // Sign in again: the password, then a code. The code used at set-up
        // is refused (replay); a recovery code works once.
        let (anon, csrf) = app.visit_login().await;
        let pw = app.login(&anon, &csrf, EMAIL, PASSWORD).await;
        assert_eq!(pw.location(), "/admin/two-factor-challenge");
        let pending = pw.session_cookie().expect("rotated at the password step");
        assert_ne!(pending, anon);
        // Half-way through, no page opens.
        assert!(
            app.get(Some(&pending), "/admin")
                .await
                .location()
                .starts_with("/admin/login")
        );
        let challenge = app.get(Some(&pending), "/admin/two-factor-challenge").await;
        assert_eq!(challenge.status, StatusCode::OK);
        assert!(challenge.body.contains("id=\"use-recovery-code\""));
        let csrf = challenge.csrf();
        let replay = app
            .post(
                Some(&pending),
                "/admin/two-factor-challenge",
                form(&[("_csrf", &csrf), ("code", &code)]),
            )
            .await;
        assert_eq!(replay.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(replay.body.contains("The code is not valid."));
        let recovered = app
            .post(
                Some(&pending),
                "/admin/two-factor-challenge",
                form(&[("_csrf", &csrf), ("recovery_code", &codes[0])]),
            )
            .await;
        assert_eq!(
            recovered.status,
            StatusCode::SEE_OTHER,
            "{}",
            recovered.body
        );
        assert_eq!(recovered.location(), "/admin");
        let signed = recovered.session_cookie().unwrap();
        assert_ne!(signed, pending);
        assert_eq!(
            app.get(Some(&signed), "/admin").await.status,
            StatusCode::OK
        );

        // The same recovery code a second time: refused.
        let (anon, csrf) = app.visit_login().await;
        let pw = app.login(&anon, &csrf, EMAIL, PASSWORD).await;
        let pending = pw.session_cookie().expect("rotated at the password step");
        let csrf = app
            .get(Some(&pending), "/admin/two-factor-challenge")
            .await
            .csrf();
        let again = app
            .post(
                Some(&pending),
                "/admin/two-factor-challenge",
                form(&[("_csrf", &csrf), ("recovery_code", &codes[0])]),
            )
            .await;
        assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(again.body.contains("The recovery code is not valid."));
        // The next step's code (within the allowed drift) is accepted.
        let next = code_at(&secret, now() + 30).unwrap();
        let fresh = app
            .post(
                Some(&pending),
                "/admin/two-factor-challenge",
                form(&[("_csrf", &csrf), ("code", &next)]),
            )
            .await;
        assert_eq!(fresh.status, StatusCode::SEE_OTHER, "{}", fresh.body);
        assert_eq!(fresh.location(), "/admin");
    }
}

#[tokio::test]
async fn a_planted_session_id_is_worthless_after_sign_in() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    // The attacker gets a session id and plants it in the victim's browser.
    let (planted, csrf) = app.visit_login().await;
    let page = app.login(&planted, &csrf, EMAIL, PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let victim = page.session_cookie().unwrap();
    assert_ne!(planted, victim);
    // The planted id does not follow the victim into the panel.
    for path in ["/admin", "/admin/two-factor/setup"] {
        let p = app.get(Some(&planted), path).await;
        assert!(
            p.location().starts_with("/admin/login"),
            "{path}: {}",
            p.location()
        );
    }
}

#[tokio::test]
async fn forms_need_the_sessions_csrf_token() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let (cookie, csrf) = app.visit_login().await;
    let (_, other_csrf) = app.visit_login().await;
    for body in [
        form(&[("email", EMAIL), ("password", PASSWORD)]),
        form(&[
            ("_csrf", &other_csrf),
            ("email", EMAIL),
            ("password", PASSWORD),
        ]),
        form(&[("_csrf", ""), ("email", EMAIL), ("password", PASSWORD)]),
    ] {
        let p = app.post(Some(&cookie), "/admin/login", body).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        assert!(p.body.contains("Page expired"));
    }
    // No session at all: refused too.
    let p = app
        .post(
            None,
            "/admin/login",
            form(&[("_csrf", &csrf), ("email", EMAIL), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // Signed in: a state change without the token is refused, and nothing
    // changed (still signed in).
    let (full, _, _) = app.sign_in_and_set_up().await;
    let p = app
        .post(
            Some(&full),
            "/admin/logout",
            form(&[("_csrf", &other_csrf)]),
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(Some(&full), "/admin").await.status, StatusCode::OK);
}

#[tokio::test]
async fn next_never_leaves_the_panel() {
    let db = TestDb::sqlite();
    let app = App::with_config(
        &db,
        AuthConfig {
            throttle: ThrottleConfig::off(),
            ..AuthConfig::default()
        },
    )
    .await;
    for evil in [
        "https://evil.example/",
        "//evil.example/admin",
        "/\\evil.example",
        "javascript:alert(1)",
        "/admin/login",
        "/elsewhere",
    ] {
        let page = app
            .get(None, &format!("/admin/login?next={}", enc(evil)))
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("name=\"next\""), "{evil}");
        // Posted directly, it is ignored as well.
        let (cookie, csrf) = app.visit_login().await;
        let p = app
            .post(
                Some(&cookie),
                "/admin/login",
                form(&[
                    ("_csrf", &csrf),
                    ("email", EMAIL),
                    ("password", PASSWORD),
                    ("next", evil),
                ]),
            )
            .await;
        assert_eq!(p.location(), "/admin/two-factor/setup", "{evil}");
        let half = p.session_cookie().unwrap();
        let setup = app.get(Some(&half), "/admin/two-factor/setup").await;
        let secret = between(&setup.body, "<code id=\"two-factor-secret\">", "<");
        let done = app
            .post(
                Some(&half),
                "/admin/two-factor/setup",
                form(&[
                    ("_csrf", &setup.csrf()),
                    ("code", &code_at(&secret, now()).unwrap()),
                ]),
            )
            .await;
        assert!(
            done.body
                .contains("id=\"continue\" class=\"button primary\" href=\"/admin\""),
            "{evil}"
        );
        // Reset two-factor for the next round.
        let user = app
            .platform
            .access()
            .find_user_by_email(EMAIL)
            .await
            .unwrap()
            .unwrap();
        app.platform
            .auth()
            .two_factor()
            .disable(&Context::console(), user.id)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn guessing_is_throttled_without_telling_whether_the_account_exists() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let (cookie, csrf) = app.visit_login().await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let p = app.login(&cookie, &csrf, EMAIL, "wrong password").await;
        statuses.push(p.status);
        if p.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(p.headers.contains_key(header::RETRY_AFTER));
            assert!(p.body.contains("Too many attempts"));
        }
    }
    assert_eq!(statuses[0], StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(statuses[6], StatusCode::TOO_MANY_REQUESTS);
    // Unknown accounts are throttled the same way.
    let mut unknown = Vec::new();
    for _ in 0..7 {
        unknown.push(
            app.login(&cookie, &csrf, "ghost@example.com", "x")
                .await
                .status,
        );
    }
    assert_eq!(statuses, unknown);
    // Even the right password is not checked while throttled.
    let p = app.login(&cookie, &csrf, EMAIL, PASSWORD).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);

    // Two-factor codes are throttled per account.
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let (full, _, _) = app.sign_in_and_set_up().await;
    drop(full);
    let (cookie, csrf) = app.visit_login().await;
    let pending = app
        .login(&cookie, &csrf, EMAIL, PASSWORD)
        .await
        .session_cookie()
        .expect("rotated at the password step");
    let csrf = app
        .get(Some(&pending), "/admin/two-factor-challenge")
        .await
        .csrf();
    let mut last = StatusCode::OK;
    for _ in 0..7 {
        last = app
            .post(
                Some(&pending),
                "/admin/two-factor-challenge",
                form(&[("_csrf", &csrf), ("code", "123456")]),
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn password_reset_by_mailed_single_use_link() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let page = app.get(None, "/admin/forgot-password").await;
    let cookie = page.session_cookie().unwrap();
    let csrf = page.csrf();
    let known = app
        .post(
            Some(&cookie),
            "/admin/forgot-password",
            form(&[("_csrf", &csrf), ("email", EMAIL)]),
        )
        .await;
    let unknown = app
        .post(
            Some(&cookie),
            "/admin/forgot-password",
            form(&[("_csrf", &csrf), ("email", "ghost@example.com")]),
        )
        .await;
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.body, unknown.body, "the answer does not tell");
    // The mail is sent in the background.
    let mut mail = None;
    for _ in 0..100 {
        mail = app.mailer.last_to(EMAIL);
        if mail.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mail = mail.expect("a reset mail");
    assert_eq!(
        app.mailer.sent().len(),
        1,
        "nothing mailed to unknown addresses"
    );
    let link = between(&mail.text, "/admin/reset-password/", "\n");
    assert!(mail.text.contains("/admin/reset-password/"));
    assert!(
        !mail.text.contains("Host"),
        "links never come from the Host header"
    );
    let path = format!("/admin/reset-password/{link}");

    // A forged link.
    let forged = app
        .post(
            Some(&cookie),
            "/admin/reset-password/forged-token",
            form(&[
                ("_csrf", &csrf),
                ("password", "a new password 1"),
                ("password_confirmation", "a new password 1"),
            ]),
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(forged.body.contains("invalid or has expired"));
    // Mismatched confirmation: nothing used up.
    let form_page = app.get(Some(&cookie), &path).await;
    assert_eq!(form_page.status, StatusCode::OK);
    let mismatch = app
        .post(
            Some(&cookie),
            &path,
            form(&[
                ("_csrf", &csrf),
                ("password", "a new password 1"),
                ("password_confirmation", "another one 22"),
            ]),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = app
        .post(
            Some(&cookie),
            &path,
            form(&[
                ("_csrf", &csrf),
                ("password", "a new password 1"),
                ("password_confirmation", "a new password 1"),
            ]),
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), "/admin/login");
    // Single use.
    let again = app
        .post(
            Some(&cookie),
            &path,
            form(&[
                ("_csrf", &csrf),
                ("password", "third password 3"),
                ("password_confirmation", "third password 3"),
            ]),
        )
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The new password signs in; the old one does not.
    let (c, t) = app.visit_login().await;
    assert_eq!(
        app.login(&c, &t, EMAIL, PASSWORD).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.login(&c, &t, EMAIL, "a new password 1").await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn access_pages_ask_for_the_password_again() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let (full, _, _) = app.sign_in_and_set_up().await;
    let roles = app.get(Some(&full), "/admin/access/roles").await;
    assert_eq!(roles.status, StatusCode::SEE_OTHER);
    assert_eq!(
        roles.location(),
        "/admin/confirm-password?next=%2Fadmin%2Faccess%2Froles"
    );
    let page = app.get(Some(&full), roles.location()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("name=\"next\" value=\"/admin/access/roles\"")
    );
    let csrf = page.csrf();
    let wrong = app
        .post(
            Some(&full),
            "/admin/confirm-password",
            form(&[
                ("_csrf", &csrf),
                ("password", "nope nope"),
                ("next", "/admin/access/roles"),
            ]),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let right = app
        .post(
            Some(&full),
            "/admin/confirm-password",
            form(&[
                ("_csrf", &csrf),
                ("password", PASSWORD),
                ("next", "https://evil.example/"),
            ]),
        )
        .await;
    assert_eq!(right.location(), "/admin", "an outside next is dropped");
    // The confirmation rotated the session: the old id is dead.
    let confirmed = right.session_cookie().expect("rotated");
    assert_ne!(confirmed, full);
    assert!(
        app.get(Some(&full), "/admin")
            .await
            .location()
            .starts_with("/admin/login")
    );
    let roles = app.get(Some(&confirmed), "/admin/access/roles").await;
    assert_eq!(roles.status, StatusCode::OK);
}

#[tokio::test]
async fn profile_name_and_password() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let (full, _, _) = app.sign_in_and_set_up().await;
    let page = app.get(Some(&full), "/admin/profile").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("8 unused recovery codes left"));
    let csrf = page.csrf();
    let saved = app
        .post(
            Some(&full),
            "/admin/profile",
            form(&[("_csrf", &csrf), ("name", "<b>Ada</b>"), ("email", EMAIL)]),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let page = app.get(Some(&full), "/admin/profile").await;
    assert!(page.body.contains("&lt;b&gt;Ada&lt;/b&gt;"));
    assert!(!page.body.contains("<b>Ada</b>"));
    let bad = app
        .post(
            Some(&full),
            "/admin/profile",
            form(&[
                ("_csrf", &csrf),
                ("name", "Ada"),
                ("email", "not an address"),
            ]),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("class=\"error\""));
    let mismatch = app
        .post(
            Some(&full),
            "/admin/profile/password",
            form(&[
                ("_csrf", &csrf),
                ("current_password", PASSWORD),
                ("password", "brand new pass 1"),
                ("password_confirmation", "x"),
            ]),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    let wrong = app
        .post(
            Some(&full),
            "/admin/profile/password",
            form(&[
                ("_csrf", &csrf),
                ("current_password", "wrong"),
                ("password", "brand new pass 1"),
                ("password_confirmation", "brand new pass 1"),
            ]),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = app
        .post(
            Some(&full),
            "/admin/profile/password",
            form(&[
                ("_csrf", &csrf),
                ("current_password", PASSWORD),
                ("password", "brand new pass 1"),
                ("password_confirmation", "brand new pass 1"),
            ]),
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    // This session stays signed in, under a new id: the old one is dead.
    let rotated = ok.session_cookie().expect("rotated");
    assert_ne!(rotated, full);
    assert_eq!(
        app.get(Some(&rotated), "/admin/profile").await.status,
        StatusCode::OK
    );
    assert!(
        app.get(Some(&full), "/admin/profile")
            .await
            .location()
            .starts_with("/admin/login")
    );
}

#[tokio::test]
async fn headers_and_oversized_posts() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let page = app.get(None, "/admin/login").await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src") || d.trim().starts_with("default-src"))
        .unwrap();
    assert!(!script_src.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(page.headers.contains_key(header::REFERRER_POLICY));
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    // No inline script on the page itself.
    assert!(!page.body.contains("<script>"));

    let cookie = page.session_cookie().unwrap();
    let huge = format!("_csrf={}&email={}", page.csrf(), "a".repeat(1024 * 1024));
    let p = app.post(Some(&cookie), "/admin/login", huge).await;
    assert_eq!(p.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Registration is off by default.
    assert_eq!(
        app.get(None, "/admin/register").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn registration_when_switched_on() {
    let db = TestDb::sqlite();
    let app = App::with_config(
        &db,
        AuthConfig {
            registration: true,
            ..AuthConfig::default()
        },
    )
    .await;
    let page = app.get(None, "/admin/register").await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = page.session_cookie().unwrap();
    let taken = app
        .post(
            Some(&cookie),
            "/admin/register",
            form(&[
                ("_csrf", &page.csrf()),
                ("name", "Eve"),
                ("email", EMAIL),
                ("password", "long enough 1"),
                ("password_confirmation", "long enough 1"),
            ]),
        )
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = app
        .post(
            Some(&cookie),
            "/admin/register",
            form(&[
                ("_csrf", &page.csrf()),
                ("name", "Bob"),
                ("email", "bob@example.com"),
                ("password", "long enough 1"),
                ("password_confirmation", "long enough 1"),
            ]),
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), "/admin/two-factor/setup");
    // The new account has no permissions: the dashboard shows nothing to
    // manage, and the access pages are refused.
    let half = ok.session_cookie().unwrap();
    assert_eq!(
        app.get(Some(&half), "/admin").await.location(),
        "/admin/two-factor/setup"
    );
}

#[tokio::test]
async fn panel_and_api_requests_reach_the_access_log() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let (full, _, _) = app.sign_in_and_set_up().await;
    assert_eq!(app.get(Some(&full), "/admin").await.status, StatusCode::OK);
    app.get(None, "/admin/reset-password/secret-reset-token")
        .await;
    let user = app
        .platform
        .access()
        .find_user_by_email(EMAIL)
        .await
        .unwrap()
        .unwrap();
    let token = app
        .platform
        .access()
        .create_token(&Context::console(), user.id, "t", &[], None)
        .await
        .unwrap();
    let api = app
        .send(
            Request::get("/api/audits")
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", token.plain_text),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    // Authenticated (the query itself is incomplete: 422).
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", api.body);
    app.platform.access_log().flush().await.unwrap();
    let entries = app
        .platform
        .access_log()
        .recent(None, None, 100)
        .await
        .unwrap();
    let dash = entries
        .iter()
        .map(|(_, e)| e)
        .find(|e| e.surface == "panel" && e.path == "/admin" && e.status == 200)
        .expect("the dashboard request");
    assert_eq!(dash.user_id, Some(user.id));
    assert_eq!(dash.ip.as_deref(), Some("192.0.2.7"));
    assert!(dash.request_id.is_some());
    let api = entries
        .iter()
        .map(|(_, e)| e)
        .find(|e| e.surface == "api")
        .expect("the API request");
    assert_eq!(api.token_id, Some(token.info.id));
    assert_eq!(api.user_id, Some(user.id));
    assert!(
        entries
            .iter()
            .all(|(_, e)| !e.path.contains("secret-reset-token")),
        "reset tokens never reach the log"
    );
}

#[tokio::test]
async fn the_ip_allowlist_guards_the_panel() {
    use platform_admin::layer::{IpAllowlistLayer, parse_networks};
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    assert!(parse_networks("10.0.0.0/8, nonsense").is_err());
    let nets = parse_networks("10.0.0.0/8,2001:db8::/32").unwrap();
    let router = axum::Router::new()
        .nest(
            "/admin",
            platform_admin::panel_router().layer(IpAllowlistLayer::new(nets, false)),
        )
        .with_state(app.platform.clone());
    for (ip, allowed) in [([10, 1, 2, 3], true), ([192, 0, 2, 7], false)] {
        let mut req = Request::get("/admin/login").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 4000))));
        let res = router.clone().oneshot(req).await.unwrap();
        if allowed {
            assert_eq!(res.status(), StatusCode::OK, "{ip:?}");
        } else {
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{ip:?}");
        }
    }
}

#[tokio::test]
async fn reset_links_and_codes_are_throttled_per_address() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let page = app.get(None, "/admin/reset-password/guess").await;
    let cookie = page.session_cookie().unwrap();
    let csrf = page.csrf();
    let mut statuses = Vec::new();
    for i in 0..32 {
        let p = app
            .post(
                Some(&cookie),
                &format!("/admin/reset-password/guess-{i}"),
                form(&[
                    ("_csrf", &csrf),
                    ("password", "a new password 1"),
                    ("password_confirmation", "does not match"),
                ]),
            )
            .await;
        statuses.push(p.status);
    }
    assert_eq!(statuses[0], StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(statuses[31], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn admins_disable_accounts_and_reset_two_factor() {
    for db in all_backends().await {
        let app = App::new(&db).await;
        let ctx = Context::console();
        let access = app.platform.access();
        let bob = access
            .create_user(
                &ctx,
                NewUser {
                    email: "bob@example.com".into(),
                    name: "Bob".into(),
                    password: PASSWORD.into(),
                },
            )
            .await
            .unwrap();
        let token = access
            .create_token(&ctx, bob.id, "t", &[], None)
            .await
            .unwrap();
        let api = |t: String| {
            Request::get("/api/audits?resource=user")
                .header(header::AUTHORIZATION, format!("Bearer {t}"))
                .body(Body::empty())
                .unwrap()
        };
        let (bob_session, _, _) = app.sign_in_and_set_up_as("bob@example.com", PASSWORD).await;
        assert_eq!(
            app.get(Some(&bob_session), "/admin").await.status,
            StatusCode::OK
        );

        let (admin, _, _) = app.sign_in_and_set_up().await;
        // The access pages want the password first.
        let admin = app.confirm(&admin).await;
        let page = app
            .get(Some(&admin), &format!("/admin/access/users/{}", bob.id))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.location());
        assert!(page.body.contains("id=\"toggle-account\""));
        assert!(page.body.contains("id=\"reset-two-factor\""));
        let csrf = page.csrf();

        // Disable: Bob's session ends, his token and password stop working.
        let res = app
            .post(
                Some(&admin),
                &format!("/admin/access/users/{}/status", bob.id),
                form(&[("_csrf", &csrf), ("disabled", "1")]),
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert!(
            app.get(Some(&bob_session), "/admin")
                .await
                .location()
                .starts_with("/admin/login")
        );
        assert_eq!(
            app.send(api(token.plain_text.clone())).await.status,
            StatusCode::UNAUTHORIZED
        );
        let (c, t) = app.visit_login().await;
        let login = app.login(&c, &t, "bob@example.com", PASSWORD).await;
        assert_eq!(login.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(login.body.contains(LOGIN_FAILED_MESSAGE));

        // Enable again, and reset his two-factor: the next sign-in sets it
        // up again.
        app.post(
            Some(&admin),
            &format!("/admin/access/users/{}/status", bob.id),
            form(&[("_csrf", &csrf), ("disabled", "0")]),
        )
        .await;
        assert_ne!(
            app.send(api(token.plain_text.clone())).await.status,
            StatusCode::UNAUTHORIZED
        );
        let res = app
            .post(
                Some(&admin),
                &format!("/admin/access/users/{}/two-factor/reset", bob.id),
                form(&[("_csrf", &csrf)]),
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let (c, t) = app.visit_login().await;
        let login = app.login(&c, &t, "bob@example.com", PASSWORD).await;
        assert_eq!(login.location(), "/admin/two-factor/setup");

        // Nobody disables themself.
        let admin_id = access.find_user_by_email(EMAIL).await.unwrap().unwrap().id;
        app.post(
            Some(&admin),
            &format!("/admin/access/users/{admin_id}/status"),
            form(&[("_csrf", &csrf), ("disabled", "1")]),
        )
        .await;
        assert_eq!(app.get(Some(&admin), "/admin").await.status, StatusCode::OK);

        // A user manager who is not a super admin cannot touch a super
        // admin's account.
        access.create_role(&ctx, "managers").await.unwrap();
        access
            .grant_role_permission(&ctx, "managers", "update_user")
            .await
            .unwrap();
        access
            .grant_role_permission(&ctx, "managers", "view_user")
            .await
            .unwrap();
        access.assign_role(&ctx, bob.id, "managers").await.unwrap();
        let (bob_session, _, _) = app.sign_in_and_set_up_as("bob@example.com", PASSWORD).await;
        let confirm = app.get(Some(&bob_session), "/admin/confirm-password").await;
        let bob_session = app.confirm(&bob_session).await;
        let res = app
            .post(
                Some(&bob_session),
                &format!("/admin/access/users/{admin_id}/status"),
                form(&[("_csrf", &confirm.csrf()), ("disabled", "1")]),
            )
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", db.backend.name());
        assert!(
            access
                .user(admin_id)
                .await
                .unwrap()
                .unwrap()
                .disabled_at
                .is_none()
        );
    }
}

// ---- issue 8: session rotation, security events, the access log --------------

/// The audit entries of one `user` record, oldest first.
async fn user_entries(app: &App, record: &str) -> Vec<platform_core::audit::Entry> {
    let mut e = app
        .platform
        .audit()
        .for_record("user", record, 1000)
        .await
        .unwrap();
    e.reverse();
    e
}

#[tokio::test]
async fn the_password_step_rotates_the_session_before_the_second_factor() {
    for db in all_backends().await {
        let b = db.backend.name();
        let app = App::new(&db).await;
        let (_, secret, _) = app.sign_in_and_set_up().await;
        // An account with two-factor authentication: the password step.
        let (anon, csrf) = app.visit_login().await;
        let pw = app.login(&anon, &csrf, EMAIL, PASSWORD).await;
        assert_eq!(pw.location(), "/admin/two-factor-challenge", "{b}");
        let pending = pw
            .session_cookie()
            .expect("a new session cookie after the password step");
        assert_ne!(pending, anon, "{b}: the session id rotates");
        // The old id no longer works: no challenge for it, and a good code
        // posted with it signs nothing in.
        let old = app.get(Some(&anon), "/admin/two-factor-challenge").await;
        assert_eq!(old.location(), "/admin/login", "{b}");
        let code = code_at(&secret, now() + 30).unwrap();
        let refused = app
            .post(
                Some(&anon),
                "/admin/two-factor-challenge",
                form(&[("_csrf", &csrf), ("code", &code)]),
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{b}");
        assert!(refused.session_cookie().is_none(), "{b}");
        // The CSRF token rotated too: the old one is refused on the new id.
        let stale = app
            .post(
                Some(&pending),
                "/admin/two-factor-challenge",
                form(&[("_csrf", &csrf), ("code", &code)]),
            )
            .await;
        assert_eq!(stale.status, StatusCode::FORBIDDEN, "{b}");
        // The new id goes on to the second factor, which rotates again.
        let challenge = app.get(Some(&pending), "/admin/two-factor-challenge").await;
        assert_eq!(challenge.status, StatusCode::OK, "{b}");
        assert_ne!(challenge.csrf(), csrf, "{b}");
        let done = app
            .post(
                Some(&pending),
                "/admin/two-factor-challenge",
                form(&[("_csrf", &challenge.csrf()), ("code", &code)]),
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{b}: {}", done.body);
        let signed = done.session_cookie().unwrap();
        assert_ne!(signed, pending, "{b}");
        assert_eq!(
            app.get(Some(&signed), "/admin").await.status,
            StatusCode::OK
        );
        for dead in [&anon, &pending] {
            assert!(
                app.get(Some(dead), "/admin")
                    .await
                    .location()
                    .starts_with("/admin/login"),
                "{b}"
            );
        }
    }
}

#[tokio::test]
async fn privilege_changes_rotate_the_session() {
    for db in all_backends().await {
        let b = db.backend.name();
        let app = App::new(&db).await;
        let access = app.platform.access();
        let console = Context::console();
        let bob = access
            .create_user(
                &console,
                NewUser {
                    email: "bob@example.com".into(),
                    name: "Bob".into(),
                    password: PASSWORD.into(),
                },
            )
            .await
            .unwrap();
        let (bob_session, _, _) = app.sign_in_and_set_up_as("bob@example.com", PASSWORD).await;
        let (full, _, _) = app.sign_in_and_set_up().await;
        // Confirming the password rotates (App::confirm checks it).
        let confirmed = app.confirm(&full).await;
        assert!(
            app.get(Some(&full), "/admin")
                .await
                .location()
                .starts_with("/admin/login"),
            "{b}: the id before the confirmation is dead"
        );
        let me = access.find_user_by_email(EMAIL).await.unwrap().unwrap().id;
        let page = app
            .get(Some(&confirmed), &format!("/admin/access/users/{me}"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{b}: {}", page.location());
        let csrf = page.csrf();
        // Ada grants herself a permission: her own privileges change.
        let saved = app
            .post(
                Some(&confirmed),
                &format!("/admin/access/users/{me}"),
                form(&[
                    ("_csrf", &csrf),
                    ("roles", "super_admin"),
                    ("permissions", "view_any_user"),
                ]),
            )
            .await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{b}: {}", saved.body);
        let rotated = saved.session_cookie().expect("rotated");
        assert_ne!(rotated, confirmed, "{b}");
        assert!(
            app.get(Some(&confirmed), "/admin")
                .await
                .location()
                .starts_with("/admin/login"),
            "{b}: the old id is dead"
        );
        // The session keeps its CSRF token and its password confirmation.
        let again = app
            .get(Some(&rotated), &format!("/admin/access/users/{me}"))
            .await;
        assert_eq!(again.status, StatusCode::OK, "{b}");
        assert_eq!(again.csrf(), csrf, "{b}");
        // Saving without a change keeps the id.
        let same = app
            .post(
                Some(&rotated),
                &format!("/admin/access/users/{me}"),
                form(&[
                    ("_csrf", &csrf),
                    ("roles", "super_admin"),
                    ("permissions", "view_any_user"),
                ]),
            )
            .await;
        assert_eq!(same.status, StatusCode::SEE_OTHER, "{b}");
        assert!(same.session_cookie().is_none(), "{b}");
        // Another user's changes do not touch this session; a new password
        // for Bob ends his sessions.
        let bob_page = app
            .post(
                Some(&rotated),
                &format!("/admin/access/users/{}", bob.id),
                form(&[("_csrf", &csrf), ("password", "a new password for bob")]),
            )
            .await;
        assert_eq!(bob_page.status, StatusCode::SEE_OTHER, "{b}");
        assert!(bob_page.session_cookie().is_none(), "{b}");
        assert!(
            app.get(Some(&bob_session), "/admin")
                .await
                .location()
                .starts_with("/admin/login"),
            "{b}: Bob's session ended with his old password"
        );
        assert_eq!(
            app.get(Some(&rotated), "/admin").await.status,
            StatusCode::OK
        );
        // A role she holds changes: her privileges change, the id rotates;
        // a role she does not hold leaves it alone.
        for role in ["editors", "others"] {
            access.create_role(&console, role).await.unwrap();
        }
        access.assign_role(&console, me, "editors").await.unwrap();
        // (Her grants are read as each request starts.)
        let others = app
            .post(
                Some(&rotated),
                "/admin/access/roles/others",
                form(&[("_csrf", &csrf), ("p", "view_any_user")]),
            )
            .await;
        assert_eq!(others.status, StatusCode::SEE_OTHER, "{b}: {}", others.body);
        assert!(others.session_cookie().is_none(), "{b}");
        let editors = app
            .post(
                Some(&rotated),
                "/admin/access/roles/editors",
                form(&[("_csrf", &csrf), ("p", "view_any_user")]),
            )
            .await;
        assert_eq!(
            editors.status,
            StatusCode::SEE_OTHER,
            "{b}: {}",
            editors.body
        );
        let again = editors.session_cookie().expect("rotated");
        assert_ne!(again, rotated, "{b}");
        assert!(
            app.get(Some(&rotated), "/admin")
                .await
                .location()
                .starts_with("/admin/login"),
            "{b}"
        );
        assert_eq!(app.get(Some(&again), "/admin").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn failed_sign_ins_lockouts_and_wrong_codes_are_security_events() {
    const WRONG_PASSWORD: &str = "hunter2 is my password";
    const WRONG_CODE: &str = "271828";
    const WRONG_RECOVERY: &str = "WrongCode1-WrongCode2";
    const GHOST: &str = "ghost-xyz@example.org";
    for db in all_backends().await {
        let b = db.backend.name();
        let app = App::new(&db).await;
        let (full, _, _) = app.sign_in_and_set_up().await;
        let ada = app
            .platform
            .access()
            .find_user_by_email(EMAIL)
            .await
            .unwrap()
            .unwrap();
        let (anon, csrf) = app.visit_login().await;
        // A wrong password, and an address that has no account.
        let p = app.login(&anon, &csrf, EMAIL, WRONG_PASSWORD).await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let p = app.login(&anon, &csrf, GHOST, WRONG_PASSWORD).await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        // The password, then a wrong code and a wrong recovery code.
        let pending = app
            .login(&anon, &csrf, EMAIL, PASSWORD)
            .await
            .session_cookie()
            .unwrap();
        let token = app
            .get(Some(&pending), "/admin/two-factor-challenge")
            .await
            .csrf();
        for field in [("code", WRONG_CODE), ("recovery_code", WRONG_RECOVERY)] {
            let p = app
                .post(
                    Some(&pending),
                    "/admin/two-factor-challenge",
                    form(&[("_csrf", &token), field]),
                )
                .await;
            assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        }
        // Guessing until locked out (5 a minute), and on.
        let (anon, csrf) = app.visit_login().await;
        let mut throttled = 0;
        for _ in 0..12 {
            let p = app.login(&anon, &csrf, EMAIL, WRONG_PASSWORD).await;
            if p.status == StatusCode::TOO_MANY_REQUESTS {
                throttled += 1;
            }
        }
        assert!(throttled >= 8, "{b}: {throttled}");

        let entries = user_entries(&app, &ada.id.to_string()).await;
        let of = |event: &str| {
            entries
                .iter()
                .filter(|e| e.event == event)
                .collect::<Vec<_>>()
        };
        let failed = of("login_failed");
        // 5 checks a minute: the set-up's sign-in and the right password
        // took 2, so 1 + 2 wrong passwords were checked before the lock.
        assert_eq!(failed.len(), 3, "{b}");
        let locked = of("locked_out");
        assert_eq!(locked.len(), 1, "{b}: {throttled} lock-outs, recorded once");
        let code = of("two_factor_failed");
        assert_eq!(code.len(), 1, "{b}");
        let recovery = of("recovery_code_failed");
        assert_eq!(recovery.len(), 1, "{b}");
        for e in failed.iter().chain(&locked).chain(&code).chain(&recovery) {
            assert_eq!(e.resource, "user");
            assert_eq!(e.ip.as_deref(), Some("192.0.2.7"), "{b}: {}", e.event);
            assert_eq!(e.user_agent.as_deref(), Some(AGENT), "{b}: {}", e.event);
            assert_eq!(e.actor_label.as_deref(), Some(EMAIL), "{b}: {}", e.event);
            assert!(e.tag_list().contains(&"security".to_owned()), "{b}");
        }
        assert_eq!(
            failed[0].new_values_map()["reason"],
            serde_json::json!("wrong_password")
        );
        assert_eq!(
            locked[0].new_values_map()["step"],
            serde_json::json!("sign_in")
        );
        assert_eq!(
            code[0].new_values_map()["reason"],
            serde_json::json!("wrong_code")
        );
        // The unknown address: recorded without the address.
        let unknown = user_entries(&app, "unknown").await;
        assert_eq!(unknown.len(), 1, "{b}: {unknown:?}");
        let u = &unknown[0];
        assert_eq!(u.event, "login_failed");
        assert_eq!(u.actor_type, "anonymous");
        assert_eq!(u.ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(u.user_agent.as_deref(), Some(AGENT));
        let values = u.new_values_map();
        assert_eq!(values["reason"], serde_json::json!("unknown_account"));
        assert_eq!(
            values["email_digest"],
            serde_json::json!(app.platform.auth().email_digest(GHOST))
        );
        // No secret, and not the typed address, in any stored column of any
        // entry.
        let all = app.platform.audit().recent(None, None, 1000).await.unwrap();
        let dump = serde_json::to_string(&all).unwrap();
        for secret in [
            WRONG_PASSWORD,
            PASSWORD,
            WRONG_CODE,
            WRONG_RECOVERY,
            GHOST,
            "ghost-xyz",
        ] {
            assert!(
                !dump.contains(secret),
                "{b}: `{secret}` is in the audit trail"
            );
        }

        // The user's page shows them with human labels.
        let admin = app.confirm(&full).await;
        let page = app
            .get(Some(&admin), &format!("/admin/access/users/{}", ada.id))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{b}");
        let section = between(&page.body, "id=\"security-events\"", "</section>");
        for label in [
            "Failed sign-in",
            "Locked out (too many attempts)",
            "Wrong two-factor code",
            "Wrong recovery code",
            "Signed in",
            "wrong password",
            "192.0.2.7",
            AGENT,
        ] {
            assert!(section.contains(label), "{b}: `{label}` not on the page");
        }
        assert!(!section.contains("login_failed"), "{b}: raw event names");
    }
}

#[tokio::test]
async fn the_access_log_masks_searches_filters_and_secrets() {
    for db in all_backends().await {
        let b = db.backend.name();
        let app = App::with_registry(
            &db,
            AuthConfig::default(),
            platform_tests::domain::registry(),
        )
        .await;
        let (full, _, _) = app.sign_in_and_set_up().await;
        let user = app
            .platform
            .access()
            .find_user_by_email(EMAIL)
            .await
            .unwrap()
            .unwrap();
        let token = app
            .platform
            .access()
            .create_token(&Context::console(), user.id, "t", &[], None)
            .await
            .unwrap();
        let query = "search=ada@example.com&filter[email]=x&token=abc";
        let api = app
            .send(
                Request::get(format!(
                    "/api/customers?{query}&filter%5Biban%5D=DE89370400440532013000&page[size]=5"
                ))
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", token.plain_text),
                )
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        assert!(
            api.status.is_success() || api.status.is_client_error(),
            "{b}"
        );
        app.get(Some(&full), &format!("/admin/customers?{query}"))
            .await;
        app.get(Some(&full), "/admin/search?q=ada%40example.com")
            .await;
        app.platform.access_log().flush().await.unwrap();
        let paths: Vec<String> = app
            .platform
            .access_log()
            .recent(None, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.path)
            .collect();
        let joined = paths.join("\n");
        assert!(
            joined.contains("/api/customers?search=***&filter[email]=***&token=***"),
            "{b}: {joined}"
        );
        assert!(joined.contains("page[size]=5"), "{b}: harmless values stay");
        for secret in [
            "ada@example.com",
            "ada%40example.com",
            "=x&",
            "abc",
            "DE89370400440532013000",
        ] {
            assert!(
                !joined.contains(secret),
                "{b}: `{secret}` in the access log:\n{joined}"
            );
        }
        // Straight from the table too (what a database reader sees).
        let mut q = app.platform.db().sql();
        q.push("SELECT path FROM platform_access_log");
        let rows = app
            .platform
            .db()
            .fetch_all(q, &[platform_core::value::FieldType::Text])
            .await
            .unwrap();
        assert!(rows.len() >= 3, "{b}");
        for r in rows {
            let path = r[0].as_str().unwrap_or_default();
            assert!(
                !path.contains("ada@") && !path.contains("abc"),
                "{b}: {path}"
            );
        }
    }
}

#[tokio::test]
async fn production_sends_strict_transport_security() {
    let db = TestDb::sqlite();
    let app = App::new(&db).await;
    let dev = app.get(None, "/admin/login").await;
    assert!(
        !dev.headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
        "not in development (plain HTTP on localhost)"
    );
    drop(app);
    let platform = Platform::builder()
        .ignore_env()
        .environment(platform_core::platform::Environment::Production)
        .database_url(&db.url)
        .app_key(test_key())
        .registry(platform_core::resource::Registry::default())
        .background_tasks(false)
        .build()
        .await
        .unwrap();
    let router = platform_admin::app_router(&platform)
        .unwrap()
        .with_state(platform.clone());
    for path in ["/admin/login", "/api/openapi.json"] {
        let mut req = Request::get(path).body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 4000))));
        let res = router.clone().oneshot(req).await.unwrap();
        assert_eq!(
            res.headers()
                .get(header::STRICT_TRANSPORT_SECURITY)
                .and_then(|v| v.to_str().ok()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_panel_refuses_bad_emails_and_token_abilities_the_owner_lacks() {
    const XSS: &str = "a\"><svg/onload=alert(1)>@x.com";
    let db = TestDb::sqlite();
    let app = App::with_config(
        &db,
        AuthConfig {
            registration: true,
            throttle: ThrottleConfig::off(),
            ..AuthConfig::default()
        },
    )
    .await;
    // Registration.
    let (cookie, _) = app.visit_login().await;
    let page = app.get(Some(&cookie), "/admin/register").await;
    for bad in [XSS, "not an email"] {
        let res = app
            .post(
                Some(&cookie),
                "/admin/register",
                form(&[
                    ("_csrf", &page.csrf()),
                    ("name", "Eve"),
                    ("email", bad),
                    ("password", "long enough 1"),
                    ("password_confirmation", "long enough 1"),
                ]),
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(res.body.contains("must be a valid e-mail address"), "{bad}");
        assert!(!res.body.contains("<svg/onload"), "escaped");
    }
    // The profile and the new-user page.
    let (full, _, _) = app.sign_in_and_set_up().await;
    let profile = app.get(Some(&full), "/admin/profile").await;
    let res = app
        .post(
            Some(&full),
            "/admin/profile",
            form(&[("_csrf", &profile.csrf()), ("name", "Ada"), ("email", XSS)]),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.body.contains("must be a valid e-mail address"));
    let full = app.confirm(&full).await;
    for bad in [XSS, "not an email"] {
        let res = app
            .post(
                Some(&full),
                "/admin/access/users",
                form(&[
                    ("_csrf", &profile.csrf()),
                    ("name", "Eve"),
                    ("email", bad),
                    ("password", "long enough 1"),
                ]),
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(res.body.contains("must be a valid e-mail address"), "{bad}");
    }
    assert_eq!(app.platform.access().users().await.unwrap().len(), 1);

    // Tokens: Bob holds `view_any_user` only.
    let access = app.platform.access();
    let console = Context::console();
    access.create_role(&console, "viewers").await.unwrap();
    access
        .set_role_permissions(&console, "viewers", &["view_any_user".into()])
        .await
        .unwrap();
    let bob = access
        .create_user(
            &console,
            NewUser {
                email: "bob@example.com".into(),
                name: "Bob".into(),
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap();
    access
        .assign_role(&console, bob.id, "viewers")
        .await
        .unwrap();
    let (bob_session, _, _) = app.sign_in_and_set_up_as("bob@example.com", PASSWORD).await;
    let bob_session = app.confirm(&bob_session).await;
    let page = app.get(Some(&bob_session), "/admin/access/tokens").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.location());
    let refused = app
        .post(
            Some(&bob_session),
            "/admin/access/tokens",
            form(&[
                ("_csrf", &page.csrf()),
                ("name", "ci"),
                ("abilities", "view_any_user, delete_user, update_role"),
                ("expires_in", "30"),
            ]),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("does not have") && refused.body.contains("delete_user"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("update_role"));
    assert!(access.tokens(bob.id).await.unwrap().is_empty());
    // An admin creating a token for Bob is held to Bob's permissions too.
    let page = app
        .get(
            Some(&full),
            &format!("/admin/access/users/{}/tokens", bob.id),
        )
        .await;
    let refused = app
        .post(
            Some(&full),
            &format!("/admin/access/users/{}/tokens", bob.id),
            form(&[
                ("_csrf", &page.csrf()),
                ("name", "ci"),
                ("abilities", "delete_user"),
                ("expires_in", "30"),
            ]),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    for abilities in ["view_any_user", "*", ""] {
        let ok = app
            .post(
                Some(&bob_session),
                "/admin/access/tokens",
                form(&[
                    ("_csrf", &page_csrf(&app, &bob_session).await),
                    ("name", "ci"),
                    ("abilities", abilities),
                    ("expires_in", "30"),
                ]),
            )
            .await;
        assert_eq!(ok.status, StatusCode::CREATED, "{abilities:?}: {}", ok.body);
    }
}

async fn page_csrf(app: &App, cookie: &str) -> String {
    app.get(Some(cookie), "/admin/access/tokens").await.csrf()
}

#[tokio::test]
async fn a_generated_password_is_changed_before_anything_else() {
    const GENERATED: &str = "generated pw 4711";
    const CHOSEN: &str = "my very own password";
    for db in all_backends().await {
        let b = db.backend.name();
        let app = App::new(&db).await;
        let user = app
            .platform
            .access()
            .create_user_with(
                &Context::console(),
                NewUser {
                    email: "gen@example.com".into(),
                    name: "Gen".into(),
                    password: GENERATED.into(),
                },
                platform_core::access::NewUserOptions {
                    roles: vec!["super_admin".into()],
                    password_change_required: true,
                },
            )
            .await
            .unwrap();
        assert!(user.password_change_required, "{b}");

        // The password step leads to the change page, before two-factor.
        let (cookie, csrf) = app.visit_login().await;
        let page = app
            .login(&cookie, &csrf, "gen@example.com", GENERATED)
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{b}: {}", page.body);
        assert_eq!(page.location(), "/admin/change-password", "{b}");
        let half = page.session_cookie().unwrap();
        // Every other page sends the user back there.
        for path in [
            "/admin",
            "/admin/two-factor/setup",
            "/admin/profile",
            "/admin/access/roles",
            "/admin/search?q=x",
        ] {
            let p = app.get(Some(&half), path).await;
            assert_eq!(p.status, StatusCode::SEE_OTHER, "{b}: {path}");
            assert_eq!(p.location(), "/admin/change-password", "{b}: {path}");
        }
        let form_page = app.get(Some(&half), "/admin/change-password").await;
        assert_eq!(form_page.status, StatusCode::OK, "{b}: {}", form_page.body);
        assert!(form_page.body.contains("generated password"), "{b}");
        let csrf = form_page.csrf();
        let post = |current: &'static str, new: &'static str, again: &'static str| {
            let (half, csrf) = (half.clone(), csrf.clone());
            let app = &app;
            async move {
                app.post(
                    Some(&half),
                    "/admin/change-password",
                    form(&[
                        ("_csrf", &csrf),
                        ("current_password", current),
                        ("password", new),
                        ("password_confirmation", again),
                    ]),
                )
                .await
            }
        };
        // Refused: a mismatch, a wrong current password, the same
        // password again, a short one; the flag stays.
        for (current, new, again, says) in [
            (GENERATED, CHOSEN, "something else", "do not match"),
            ("wrong password", CHOSEN, CHOSEN, "is incorrect"),
            (GENERATED, GENERATED, GENERATED, "must differ"),
            (GENERATED, "short", "short", "at least 8"),
        ] {
            let res = post(current, new, again).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {says}");
            assert!(res.body.contains(says), "{b}: {says}: {}", res.body);
        }
        let still = app.platform.access().user(user.id).await.unwrap().unwrap();
        assert!(still.password_change_required, "{b}");

        // The change: the flag goes, the session rotates, two-factor next.
        let done = post(GENERATED, CHOSEN, CHOSEN).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{b}: {}", done.body);
        assert_eq!(done.location(), "/admin/two-factor/setup", "{b}");
        let rotated = done.session_cookie().expect("rotated");
        assert_ne!(rotated, half, "{b}");
        let after = app.platform.access().user(user.id).await.unwrap().unwrap();
        assert!(!after.password_change_required, "{b}");
        let again = app.get(Some(&rotated), "/admin/change-password").await;
        assert_eq!(again.location(), "/admin/two-factor/setup", "{b}");
        let entries = user_entries(&app, &user.id.to_string()).await;
        assert!(
            entries.iter().any(|e| e.event == "password_changed"),
            "{b}: {:?}",
            entries.iter().map(|e| &e.event).collect::<Vec<_>>()
        );

        // From now on, the normal path: the old password is refused, the
        // new one signs in to the two-factor set-up, then the panel.
        let (c, t) = app.visit_login().await;
        let old = app.login(&c, &t, "gen@example.com", GENERATED).await;
        assert_eq!(old.status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (full, _, _) = app.sign_in_and_set_up_as("gen@example.com", CHOSEN).await;
        let home = app.get(Some(&full), "/admin").await;
        assert_eq!(home.status, StatusCode::OK, "{b}: {}", home.location());
    }
}
