//! Notifications with real components on every configured database
//! (SQLite always; PostgreSQL; MariaDB with its jobs on Redis, or on a
//! separate SQLite file when `PLATFORM_TEST_REDIS_URL` is unset): one call
//! delivers to the bell, by mail (the SMTP capture server when
//! `PLATFORM_TEST_SMTP_URL`/`PLATFORM_TEST_SMTP_MAILDIR` are set, else the
//! memory mailer), to a Slack webhook, a signed JSON webhook and an SMS
//! HTTP API (loopback axum servers); preferences switch channels off when
//! sent and when the queued job runs; a 500 is retried then failed, a
//! hanging endpoint times out, a redirect into loopback and a URL that
//! resolves to loopback are refused, a dead SMTP server is retried then
//! failed; hostile text is escaped in the mail's HTML.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use platform_adapters::channel::{HttpSmsProvider, SlackChannel, WebhookChannel};
use platform_adapters::http::{HttpClient, HttpPolicy};
use platform_adapters::mail::SmtpMailer;
use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::{Actor, Context};
use platform_core::error::Error;
use platform_core::mail::{Mailer, MemoryMailer};
use platform_core::notification::Notice;
use platform_core::notify::MemorySmsProvider;
use platform_core::resource::Registry;
use platform_jobs::Jobs;
use platform_notify::{
    MailChannel, MailLayout, MailMessage, MemoryChannel, Notification, Notifications, Notifier,
    NotifyOptions, Recipient, SkipReason, SlackMessage, SmsChannel, SmsMessage,
    register_notification,
};
use platform_tests::queues::{cases, failed_job, jobs};
use platform_tests::{TestDb, env, tag, test_key, wait_until};
use serde::{Deserialize, Serialize};

// ---- notifications under test ------------------------------------------------

/// Goes everywhere.
#[derive(Serialize, Deserialize)]
struct Welcome {
    title: String,
    body: String,
}

impl Notification for Welcome {
    const NAME: &'static str = "welcome";
    const MAX_ATTEMPTS: u32 = 2;
    const BACKOFF: Duration = Duration::from_millis(200);
    fn channels(&self, _to: &Recipient) -> Vec<&str> {
        vec!["database", "mail", "slack", "webhook", "sms"]
    }
    fn to_database(&self, _to: &Recipient) -> Option<Notice> {
        Some(Notice::new(&self.title, &self.body))
    }
    fn to_mail(&self, to: &Recipient) -> Option<MailMessage> {
        Some(
            MailMessage::new(&self.title)
                .greeting(format!("Hello {},", to.display_name()))
                .line(&self.body)
                .action("Open", "https://example.com/welcome"),
        )
    }
    fn to_slack(&self, _to: &Recipient) -> Option<SlackMessage> {
        Some(SlackMessage::text(format!("{}: {}", self.title, self.body)))
    }
    fn to_sms(&self, _to: &Recipient) -> Option<SmsMessage> {
        Some(SmsMessage::new(&self.title))
    }
}
register_notification!(Welcome);

/// Goes through one channel, named in it.
#[derive(Serialize, Deserialize)]
struct Probe {
    channel: String,
    tag: String,
}

impl Notification for Probe {
    const NAME: &'static str = "probe";
    const MAX_ATTEMPTS: u32 = 2;
    const BACKOFF: Duration = Duration::from_millis(200);
    fn channels(&self, _to: &Recipient) -> Vec<&str> {
        vec![self.channel.as_str()]
    }
    fn to_slack(&self, _to: &Recipient) -> Option<SlackMessage> {
        Some(SlackMessage::text(format!("probe {}", self.tag)))
    }
    fn to_mail(&self, _to: &Recipient) -> Option<MailMessage> {
        Some(MailMessage::new(format!("probe {}", self.tag)).line("probe"))
    }
}
register_notification!(Probe);

/// Not registered.
#[derive(Serialize, Deserialize)]
struct Stray;

impl Notification for Stray {
    const NAME: &'static str = "stray";
    fn channels(&self, _to: &Recipient) -> Vec<&str> {
        vec!["log"]
    }
}

// ---- the receiving end -----------------------------------------------------------

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    method: String,
    at: Instant,
    headers: HashMap<String, String>,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Where `/redirect` points.
    redirect_to: Arc<Mutex<String>>,
}

impl Receiver {
    fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }
    fn hits_with(&self, path: &str, needle: &str) -> usize {
        self.hits(path)
            .iter()
            .filter(|h| h.body.contains(needle))
            .count()
    }
}

async fn receive(
    State(r): State<Receiver>,
    Path(path): Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    r.hits.lock().unwrap().push(Hit {
        path: path.clone(),
        method: method.to_string(),
        at: Instant::now(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    });
    match path.as_str() {
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late".into_response()
        }
        "redirect" => {
            let to = r.redirect_to.lock().unwrap().clone();
            (StatusCode::FOUND, [("location", to)], "").into_response()
        }
        "redirect307" => {
            let to = r.redirect_to.lock().unwrap().clone();
            (StatusCode::TEMPORARY_REDIRECT, [("location", to)], "").into_response()
        }
        "bad" => (StatusCode::BAD_REQUEST, "no such channel").into_response(),
        "sms" => axum::Json(serde_json::json!({ "status": "queued" })).into_response(),
        _ => "ok".into_response(),
    }
}

/// Twilio's Messages API, as far as the provider uses it.
async fn twilio(
    State(r): State<Receiver>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    r.hits.lock().unwrap().push(Hit {
        path: format!("twilio:{sid}"),
        method: "POST".into(),
        at: Instant::now(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    });
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "sid": "SM1" })),
    )
        .into_response()
}

/// Serves the receiver on `ip` (port 0); returns the base URL.
async fn serve(receiver: Receiver, ip: &str) -> String {
    let app = Router::new()
        .route("/{path}", post(receive).get(receive))
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(twilio))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

// ---- databases, queues, mail -------------------------------------------------------

/// The mailer: the SMTP capture server when configured, else memory.
enum Mailbox {
    Smtp(std::path::PathBuf),
    Memory(Arc<MemoryMailer>),
}

fn mailer() -> (Arc<dyn Mailer>, Mailbox) {
    match (
        env("PLATFORM_TEST_SMTP_URL"),
        env("PLATFORM_TEST_SMTP_MAILDIR"),
    ) {
        (Some(url), Some(dir)) => (
            Arc::new(SmtpMailer::from_url(&url, "Platform <noreply@example.com>").unwrap()),
            Mailbox::Smtp(dir.into()),
        ),
        _ => {
            eprintln!(
                "PLATFORM_TEST_SMTP_URL/_MAILDIR are not set: mail goes to the memory mailer"
            );
            let m = Arc::new(MemoryMailer::new());
            (m.clone(), Mailbox::Memory(m))
        }
    }
}

/// Decodes quoted-printable soft breaks and escapes (enough for the
/// captured HTML part).
fn qp_decode(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Mailbox {
    /// The HTML of the mail whose subject holds `needle` (waits up to 10 s).
    async fn html_of(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self {
                Mailbox::Memory(m) => {
                    if let Some(mail) = m.sent().into_iter().find(|m| m.subject.contains(needle)) {
                        return mail.html.unwrap_or_default();
                    }
                }
                Mailbox::Smtp(dir) => {
                    if let Ok(rd) = std::fs::read_dir(dir.join("new")) {
                        for e in rd.flatten() {
                            if let Ok(text) = std::fs::read_to_string(e.path())
                                && text.contains(needle)
                            {
                                let html =
                                    text.find("text/html").map_or(text.as_str(), |i| &text[i..]);
                                return qp_decode(html);
                            }
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "no mail with {needle} arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn user(p: &Platform, email: &str, name: &str) -> i64 {
    p.access()
        .create_user(
            &Context::console(),
            NewUser {
                email: email.into(),
                name: name.into(),
                password: "correct horse battery staple".into(),
            },
        )
        .await
        .unwrap()
        .id
}

// ---- the tests -----------------------------------------------------------------------

#[tokio::test]
async fn one_call_reaches_every_channel_and_failures_are_retried_refused_and_visible() {
    let receiver = Receiver::default();
    let base = serve(receiver.clone(), "127.0.0.1").await;
    // A second address on the loopback network: allowed explicitly below,
    // it redirects into 127.0.0.1, which is not.
    let other = serve(receiver.clone(), "127.0.0.2").await;
    *receiver.redirect_to.lock().unwrap() = format!("{base}/slack");
    let port = base.rsplit(':').next().unwrap().to_owned();

    for case in cases().await {
        let label = case.label.clone();
        let (mailer, mailbox) = mailer();
        let loopback =
            HttpClient::new(HttpPolicy::new().allow_loopback()).timeout(Duration::from_secs(1));
        let sms = HttpSmsProvider::json(format!("{base}/sms"))
            .unwrap()
            .bearer_token("sms-token")
            .from("Platform")
            .client(loopback.clone());
        let smtp_down = SmtpMailer::from_url(
            &format!("smtp://127.0.0.1:{}?tls=none&timeout=2", closed_port()),
            "noreply@example.com",
        )
        .unwrap();
        let jobs = jobs(&case, &tag());
        let notifications = Notifications::new()
            .channel(
                SlackChannel::new(format!("{base}/slack"))
                    .unwrap()
                    .client(loopback.clone()),
            )
            .channel(
                WebhookChannel::new(format!("{base}/hook"))
                    .unwrap()
                    .secret("hook-secret")
                    .client(loopback.clone()),
            )
            .channel(SmsChannel::new(Arc::new(sms)))
            .channel(
                SlackChannel::new(format!("{base}/fail"))
                    .unwrap()
                    .named("failing")
                    .client(loopback.clone()),
            )
            .channel(
                SlackChannel::new(format!("{base}/hang"))
                    .unwrap()
                    .named("hanging")
                    .client(loopback.clone()),
            )
            .channel(
                SlackChannel::new(format!("{other}/redirect"))
                    .unwrap()
                    .named("redirected")
                    .client(HttpClient::new(
                        HttpPolicy::new().allow_network("127.0.0.2/32".parse().unwrap()),
                    )),
            )
            // The default policy: a name that resolves to loopback.
            .channel(
                SlackChannel::new(format!("http://localhost:{port}/slack"))
                    .unwrap()
                    .named("strict"),
            )
            .channel(MailChannel::new(Arc::new(smtp_down), MailLayout::new()).named("mail_down"));
        let p = Platform::builder()
            .ignore_env()
            .database_url(&case.db.url)
            .app_key(test_key())
            .registry(Registry::default())
            .max_connections(8)
            .mailer(mailer)
            .with(jobs)
            .with(notifications)
            .build()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let jobs = p.get::<Jobs>().unwrap();
        let notifier = p.get::<Notifier>().expect("the notifier service");
        assert!(notifier.is_queued());
        p.start_workers();

        let ada = user(&p, "ada@example.com", "Ada").await;
        let bob = user(&p, "bob@example.com", "Bob").await;
        p.notifications()
            .set_phone(ada, Some("+49 30 1234567"))
            .await
            .unwrap();
        let err = p
            .notifications()
            .set_phone(bob, Some("12345"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation(e) if e.has("phone")),
            "{err}"
        );

        // One call: bell, mail, Slack, webhook, SMS; hostile text escaped.
        let m = tag();
        let report = notifier
            .notify(
                ada,
                &Welcome {
                    title: format!("Welcome {m}"),
                    body: "<script>alert('x')</script> & <b>bold</b>".into(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(report.queued.len(), 5, "{label}: {report:?}");
        assert!(report.skipped.is_empty(), "{label}: {report:?}");
        let bell = p.notifications().clone();
        let start = Instant::now();
        while bell.count_unread(ada).await.unwrap() < 1 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{label}: no bell"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let n = &bell.unread(ada, 10).await.unwrap()[0];
        assert_eq!(n.title, format!("Welcome {m}"));
        assert_eq!(n.body, "<script>alert('x')</script> & <b>bold</b>");
        wait_until("slack, webhook and sms", Duration::from_secs(10), || {
            receiver.hits_with("slack", &m) == 1
                && receiver.hits_with("hook", &m) == 1
                && receiver.hits_with("sms", &m) == 1
        })
        .await;
        let slack: serde_json::Value =
            serde_json::from_str(&receiver.hits("slack").last().unwrap().body).unwrap();
        assert!(
            slack["text"].as_str().unwrap().starts_with("Welcome"),
            "{slack}"
        );
        let hook = receiver
            .hits("hook")
            .into_iter()
            .find(|h| h.body.contains(&m))
            .unwrap();
        assert_eq!(hook.headers["idempotency-key"], report.id, "{label}");
        let sig = &hook.headers["x-platform-signature"];
        assert!(sig.starts_with("sha256=") && sig.len() == 71, "{sig}");
        let hook_body: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
        assert_eq!(hook_body["notification"], "welcome");
        assert_eq!(hook_body["recipient"]["user_id"], ada);
        assert_eq!(hook_body["data"]["title"], format!("Welcome {m}"));
        let sms_hit = receiver
            .hits("sms")
            .into_iter()
            .find(|h| h.body.contains(&m))
            .unwrap();
        assert_eq!(sms_hit.headers["authorization"], "Bearer sms-token");
        let sms_body: serde_json::Value = serde_json::from_str(&sms_hit.body).unwrap();
        assert_eq!(sms_body["to"], "+49301234567", "spaces removed");
        assert_eq!(sms_body["from"], "Platform");
        let html = mailbox.html_of(&m).await;
        assert!(
            html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt;"),
            "{label}: escaped in the HTML: {html}"
        );
        assert!(
            !html.contains("<script>") && !html.contains("<b>bold"),
            "{html}"
        );
        assert!(html.contains("Hello Ada,"), "{html}");

        // Preferences: Bob switched mail off; he has no phone.
        p.notifications()
            .set_channel_enabled(bob, "welcome", "mail", false)
            .await
            .unwrap();
        let m2 = tag();
        let report = notifier
            .notify(
                bob,
                &Welcome {
                    title: format!("Hi {m2}"),
                    body: "b".into(),
                },
            )
            .await
            .unwrap();
        let skipped: Vec<(&str, SkipReason)> = report
            .skipped
            .iter()
            .map(|(d, r)| (d.channel.as_str(), *r))
            .collect();
        assert_eq!(
            skipped,
            vec![
                ("mail", SkipReason::Preference),
                ("sms", SkipReason::Unreachable)
            ],
            "{label}"
        );
        assert_eq!(report.queued.len(), 3, "{label}");
        wait_until("bob's slack", Duration::from_secs(10), || {
            receiver.hits_with("slack", &m2) == 1
        })
        .await;

        // Checked again when the job runs: queued for two seconds later, the
        // user switches Slack off in between (for every kind: `*`).
        let m3 = tag();
        let report = notifier
            .notify_with(
                ada,
                &Probe {
                    channel: "slack".into(),
                    tag: m3.clone(),
                },
                NotifyOptions::new().delay(Duration::from_secs(2)),
            )
            .await
            .unwrap();
        assert_eq!(report.queued.len(), 1);
        p.notifications()
            .set_channel_enabled(ada, "*", "slack", false)
            .await
            .unwrap();
        let done = report.queued[0].job_id.clone().unwrap();
        let start = Instant::now();
        loop {
            jobs.flush().await.unwrap();
            let recent = jobs.stats().await.unwrap().recent;
            if recent.iter().any(|j| j.id == done && j.status == "done") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{label}: the delayed delivery did not run"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            receiver.hits_with("slack", &m3),
            0,
            "{label}: switched off before it ran"
        );
        p.notifications()
            .set_channel_enabled(ada, "*", "slack", true)
            .await
            .unwrap();

        // A 500: retried once after the backoff, then failed, on behalf of Ada.
        let principal = p.access().principal(ada).await.unwrap().unwrap();
        let ctx = Context::new(Actor::User(Arc::new(principal)));
        let m4 = tag();
        let report = notifier
            .notify_with(
                ada,
                &Probe {
                    channel: "failing".into(),
                    tag: m4.clone(),
                },
                NotifyOptions::new().on_behalf_of(&ctx),
            )
            .await
            .unwrap();
        let id = report.queued[0].job_id.clone().unwrap();
        let f = failed_job(&jobs, &id, Duration::from_secs(15)).await;
        assert_eq!(f.attempts, 2, "{label}: {f:?}");
        assert_eq!(f.kind, "platform_notification");
        assert!(
            f.error.contains("500") && f.error.contains("boom"),
            "{}",
            f.error
        );
        assert!(f.error.contains("via failing to user"), "{}", f.error);
        let tries: Vec<Instant> = receiver
            .hits("fail")
            .iter()
            .filter(|h| h.body.contains(&m4))
            .map(|h| h.at)
            .collect();
        assert_eq!(tries.len(), 2, "{label}");
        let gap = tries[1] - tries[0];
        assert!(
            gap >= Duration::from_millis(180) && gap < Duration::from_secs(4),
            "{label}: the notification's backoff (200 ms), not the job's default: {gap:?}"
        );
        let actor = f.envelope.as_ref().and_then(|e| e.actor.clone()).unwrap();
        assert_eq!(actor.user_id, ada, "{label}: acts on behalf of Ada");

        // A hanging endpoint: times out (1 s), retried, failed.
        let m5 = tag();
        let t0 = Instant::now();
        let report = notifier
            .notify(
                ada,
                &Probe {
                    channel: "hanging".into(),
                    tag: m5.clone(),
                },
            )
            .await
            .unwrap();
        let f = failed_job(
            &jobs,
            report.queued[0].job_id.as_deref().unwrap(),
            Duration::from_secs(20),
        )
        .await;
        assert!(f.error.contains("no answer within 1s"), "{}", f.error);
        assert_eq!(f.attempts, 2, "{label}");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

        // A redirect into loopback: refused at once (not retried), and
        // nothing reaches the redirect's target.
        let m6 = tag();
        let report = notifier
            .notify(
                ada,
                &Probe {
                    channel: "redirected".into(),
                    tag: m6.clone(),
                },
            )
            .await
            .unwrap();
        let f = failed_job(
            &jobs,
            report.queued[0].job_id.as_deref().unwrap(),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(f.attempts, 1, "{label}: {f:?}");
        assert!(
            f.error.contains("refused") && f.error.contains("loopback"),
            "{}",
            f.error
        );
        assert_eq!(receiver.hits_with("redirect", &m6), 1);
        assert_eq!(receiver.hits_with("slack", &m6), 0, "{label}");
        assert!(
            !f.error.contains("/redirect"),
            "no path in errors: {}",
            f.error
        );

        // A URL that resolves to loopback, under the default policy.
        let m7 = tag();
        let report = notifier
            .notify(
                ada,
                &Probe {
                    channel: "strict".into(),
                    tag: m7.clone(),
                },
            )
            .await
            .unwrap();
        let f = failed_job(
            &jobs,
            report.queued[0].job_id.as_deref().unwrap(),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(f.attempts, 1, "{label}");
        assert!(
            f.error.contains("loopback") && f.error.contains("allow_loopback"),
            "{}",
            f.error
        );
        assert_eq!(receiver.hits_with("slack", &m7), 0);

        // The SMTP server down: retried, then failed with the reason.
        let report = notifier
            .notify(
                ada,
                &Probe {
                    channel: "mail_down".into(),
                    tag: tag(),
                },
            )
            .await
            .unwrap();
        let f = failed_job(
            &jobs,
            report.queued[0].job_id.as_deref().unwrap(),
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(f.attempts, 2, "{label}: {f:?}");
        assert!(f.error.contains("unavailable"), "{}", f.error);

        // Bad input is refused before anything is queued.
        let before = receiver.hits.lock().unwrap().len();
        let err = notifier
            .notify(
                999_999,
                &Probe {
                    channel: "slack".into(),
                    tag: tag(),
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        let err = notifier
            .notify(
                [ada, 999_999],
                &Probe {
                    channel: "slack".into(),
                    tag: tag(),
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        let err = notifier
            .notify(
                ada,
                &Probe {
                    channel: "pager".into(),
                    tag: tag(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("`pager`, which is not configured"),
            "{err}"
        );
        let err = notifier
            .notify(
                ada,
                &Probe {
                    channel: "sms".into(),
                    tag: tag(),
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("implement `to_sms`"), "{err}");
        let err = notifier.notify(ada, &Stray).await.unwrap_err();
        assert!(
            err.to_string().contains("register_notification!(Stray)"),
            "{err}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.hits.lock().unwrap().len(), before, "{label}");

        p.shutdown().await;
        eprintln!("{label}: ok");
    }
}

#[tokio::test]
async fn without_jobs_the_build_says_what_to_add_and_without_queue_delivers_at_once() {
    let db = TestDb::sqlite();
    let err = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .with(Notifications::new())
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Jobs::new()") && text.contains("without_queue()"),
        "{text}"
    );

    let memory = MemoryChannel::new("slack", platform_notify::Format::Slack);
    let p = Platform::builder()
        .ignore_env()
        .database_url(&db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .with(
            Notifications::new()
                .without_queue()
                .channel(memory.clone())
                .channel(MemoryChannel::new("webhook", platform_notify::Format::Data))
                .channel(SmsChannel::new(Arc::new(MemorySmsProvider::new()))),
        )
        .build()
        .await
        .unwrap();
    let notifier = p.get::<Notifier>().unwrap();
    assert!(!notifier.is_queued());
    let ada = user(&p, "ada@example.com", "Ada").await;
    let report = notifier
        .notify(
            ada,
            &Probe {
                channel: "slack".into(),
                tag: "now".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(report.delivered.len(), 1);
    assert_eq!(memory.sent().len(), 1, "delivered in the call");
    assert_eq!(memory.sent()[0].0.user_id, Some(ada));

    // On demand, to an address: the mail channel (log mailer) reaches it,
    // the bell does not.
    let report = notifier
        .notify_now(
            Recipient::anonymous().with_email("guest@example.com"),
            &Welcome {
                title: "Hi".into(),
                body: "x".into(),
            },
        )
        .await
        .unwrap();
    let reached: Vec<&str> = report
        .delivered
        .iter()
        .map(|d| d.channel.as_str())
        .collect();
    assert_eq!(reached, vec!["mail", "slack", "webhook"]);
    assert_eq!(report.failed.len(), 0);
    let unreachable: Vec<&str> = report
        .skipped
        .iter()
        .map(|(d, _)| d.channel.as_str())
        .collect();
    assert_eq!(unreachable, vec!["database", "sms"], "{report:?}");
    p.shutdown().await;
}

#[tokio::test]
async fn http_channels_and_the_sms_provider_pass_the_conformance_suites() {
    let receiver = Receiver::default();
    let base = serve(receiver.clone(), "127.0.0.1").await;
    let client = HttpClient::new(HttpPolicy::new().allow_loopback());
    let to = Recipient::anonymous()
        .with_email("ada@example.com")
        .with_phone("+4930123456");
    let slack = SlackChannel::new(format!("{base}/slack"))
        .unwrap()
        .client(client.clone());
    platform_core::testing::notify::run_all(&slack, &to).await;
    let hook = WebhookChannel::new(format!("{base}/hook"))
        .unwrap()
        .client(client.clone());
    platform_core::testing::notify::run_all(&hook, &to).await;
    assert_eq!(
        receiver.hits("slack").len(),
        2,
        "delivered twice, refused once"
    );
    assert_eq!(receiver.hits("hook").len(), 2);

    let json = HttpSmsProvider::json(format!("{base}/sms"))
        .unwrap()
        .client(client.clone());
    platform_core::testing::sms::run_all(&json, "+4930123456").await;
    assert_eq!(receiver.hits("sms").len(), 3, "the valid messages only");
    let twilio = HttpSmsProvider::twilio("AC42", "twilio-secret", "+15550001111")
        .base_url(&base)
        .unwrap()
        .client(client);
    assert!(!format!("{twilio:?}").contains("twilio-secret"));
    platform_core::testing::sms::run_all(&twilio, "+4930123456").await;
    let hits = receiver.hits("twilio:AC42");
    assert_eq!(hits.len(), 3);
    assert!(
        hits[0].body.contains("To=%2B4930123456"),
        "{}",
        hits[0].body
    );
    assert!(
        hits[0].body.contains("From=%2B15550001111"),
        "{}",
        hits[0].body
    );
    assert!(hits[0].headers["authorization"].starts_with("Basic "));

    // The same provider under the default policy refuses loopback, clearly.
    let strict = HttpSmsProvider::json(format!("{base}/sms")).unwrap();
    let err = platform_core::notify::SmsProvider::send(
        &strict,
        &platform_core::notify::Sms::new("+4930123456", "hi"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(m) if m.contains("loopback")),
        "{err}"
    );
}

#[tokio::test]
async fn the_http_client_checks_redirects_drops_credentials_across_hosts_and_classifies_answers() {
    use platform_adapters::http::HttpRequest;

    let receiver = Receiver::default();
    let base = serve(receiver.clone(), "127.0.0.1").await;
    let other = serve(receiver.clone(), "127.0.0.2").await;
    let client = HttpClient::new(HttpPolicy::new().allow_loopback());
    let body = serde_json::json!({ "k": "v" });

    // 302 after a POST: followed as a GET without the body; the
    // credentials stay with the first host (127.0.0.2 -> 127.0.0.1).
    *receiver.redirect_to.lock().unwrap() = format!("{base}/target");
    let r = client
        .send(HttpRequest::post_json(format!("{other}/redirect"), &body).bearer("first-host-only"))
        .await
        .unwrap();
    assert_eq!((r.status, r.redirects), (200, 1));
    let hit = receiver.hits("target").pop().unwrap();
    assert_eq!(hit.method, "GET");
    assert!(hit.body.is_empty());
    assert!(
        !hit.headers.contains_key("authorization"),
        "credentials are not sent to another host: {:?}",
        hit.headers
    );

    // 307: the method and body are kept; same host keeps credentials.
    *receiver.redirect_to.lock().unwrap() = format!("{base}/target307");
    client
        .send(HttpRequest::post_json(format!("{base}/redirect307"), &body).bearer("same-host"))
        .await
        .unwrap();
    let hit = receiver.hits("target307").pop().unwrap();
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.body, body.to_string());
    assert_eq!(hit.headers["authorization"], "Bearer same-host");

    // No redirects allowed: an error that names the host, not the path.
    let err = client
        .clone()
        .max_redirects(0)
        .send(HttpRequest::post_json(format!("{base}/redirect307"), &body))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("redirect") && text.contains("127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("redirect307"), "{text}");

    // Answers: 4xx is not worth retrying, 5xx is.
    let r = client
        .send(HttpRequest::post_json(format!("{base}/bad"), &body))
        .await
        .unwrap();
    let err = r.error_for_status("webhook").unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(m) if m.contains("400") && m.contains("no such channel")),
        "{err}"
    );
    let r = client
        .send(HttpRequest::post_json(format!("{base}/fail"), &body))
        .await
        .unwrap();
    assert!(matches!(
        r.error_for_status("webhook"),
        Err(Error::Backend { .. })
    ));

    // Nothing listens: unavailable (retried by the queue).
    let err = client
        .send(HttpRequest::post_json(
            format!("http://127.0.0.1:{}/x", closed_port()),
            &body,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");

    // Literal addresses are checked like resolved ones.
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/x",
        "http://10.0.0.1/x",
        "http://0.0.0.0/x",
    ] {
        let err = HttpClient::default()
            .send(HttpRequest::post_json(url, &body))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Configuration(m) if m.contains("refused")),
            "{url}: {err}"
        );
    }
}
