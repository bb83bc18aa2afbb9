//! Outgoing webhooks against a real receiver on 127.0.0.1 (loopback
//! allowed explicitly), on SQLite, PostgreSQL and MariaDB (MariaDB's jobs
//! on Redis, or a SQLite file when `PLATFORM_TEST_REDIS_URL` is unset):
//! signatures checked by Python's `hmac`, a receiver that hangs, answers
//! 500 or redirects to a private address, a host name resolving to
//! loopback, disabling after N final failures with the owner notified,
//! replay (service and command), redaction of resource events, and the
//! routes in the permission matrix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::Context;
use platform_core::resource::Registry;
use platform_notify::Notifications;
use platform_tests::domain::{customer, invoice, registry};
use platform_tests::webhooks::{Case, cases, jobs, python_verifies, tag, wait_for};
use platform_tests::{TestDb, test_key};
use platform_webhooks::{Call, NewSubscription, Webhooks};

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// `/flaky` answers 500 until this is set.
    healed: Arc<AtomicBool>,
}

impl Receiver {
    fn hits(&self, path: &str) -> Vec<Hit> {
        let hits = self.hits.lock().unwrap();
        hits.iter().filter(|h| h.path == path).cloned().collect()
    }
}

async fn receive(
    State(r): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    r.hits.lock().unwrap().push(Hit {
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    });
    match path.as_str() {
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "flaky" if !r.healed.load(Ordering::SeqCst) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "not yet").into_response()
        }
        "hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late".into_response()
        }
        "redirect" => (
            StatusCode::FOUND,
            [("location", "http://10.0.0.1/inside")],
            "",
        )
            .into_response(),
        "metadata" => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", "http://169.254.169.254/latest/meta-data/")],
            "",
        )
            .into_response(),
        _ => "thanks".into_response(),
    }
}

async fn serve(receiver: Receiver) -> String {
    let app = Router::new()
        .route("/{path}", post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn webhooks() -> Webhooks {
    Webhooks::new()
        .ignore_env()
        .allow_loopback()
        .timeout(Duration::from_millis(800))
        .max_attempts(2)
        .backoff(Duration::from_millis(200))
        .disable_after(2)
}

fn builder(case: &Case, ns: &str, registry: Registry) -> platform_core::platform::PlatformBuilder {
    Platform::builder()
        .ignore_env()
        .database_url(&case.db.url)
        .app_key(test_key())
        .registry(registry)
        .max_connections(8)
        .with(jobs(case, ns))
        .with(Notifications::new())
        .with(webhooks())
}

/// The call of subscription `sub` once it has `status`.
async fn call_with(w: &Webhooks, sub: i64, status: &str, what: &str) -> Call {
    wait_for(what, Duration::from_secs(20), async || {
        w.calls(Some(sub), 10)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.status == status)
    })
    .await
}

async fn user(p: &Platform, email: &str) -> i64 {
    p.access()
        .create_user(
            &Context::console(),
            NewUser {
                email: email.into(),
                name: "Owner".into(),
                password: "correct horse battery staple".into(),
            },
        )
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn deliveries_are_signed_retried_refused_disabled_and_replayed_on_every_backend() {
    let receiver = Receiver::default();
    let base = serve(receiver.clone()).await;
    for case in cases().await {
        let label = case.label.clone();
        let ns = tag();
        let p = builder(&case, &ns, Registry::default())
            .build()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let w = p.get::<Webhooks>().unwrap();
        let owner = user(&p, &format!("owner-{}@example.com", tag())).await;
        let mk = |path: &str, events: &[&str]| {
            NewSubscription::new(format!("{base}/{path}"), events.iter().copied()).owner(owner)
        };
        let (ok, secret) = w.subscribe(mk("ok", &["order.*"])).await.unwrap();
        let (fail, _) = w.subscribe(mk("fail", &["order.shipped"])).await.unwrap();
        let (hang, _) = w.subscribe(mk("hang", &["order.shipped"])).await.unwrap();
        let (redirect, _) = w
            .subscribe(mk("redirect", &["order.shipped"]))
            .await
            .unwrap();
        let (metadata, _) = w
            .subscribe(mk("metadata", &["order.shipped"]))
            .await
            .unwrap();
        let (other, _) = w.subscribe(mk("other", &["invoices.*"])).await.unwrap();
        // The secret is stored encrypted, shown back as a hint only.
        assert!(secret.starts_with("whsec_"), "{label}");
        assert_eq!(ok.secret_hint, format!("…{}", &secret[secret.len() - 4..]));
        let stored = p
            .db()
            .fetch_all(
                {
                    let mut q = p.db().sql();
                    q.push("SELECT secret FROM platform_webhook_subscriptions");
                    q
                },
                &[platform_core::value::FieldType::Text],
            )
            .await
            .unwrap();
        for row in stored {
            let s = row[0].as_str().unwrap();
            assert!(
                !s.contains(&secret[6..]),
                "{label}: the secret is stored in clear"
            );
        }
        assert!(!serde_json::to_string(&ok).unwrap().contains(&secret));

        p.start_workers();
        let n = w
            .dispatch("order.shipped", serde_json::json!({ "order": 42 }))
            .await
            .unwrap();
        assert_eq!(n, 5, "{label}: one call per subscription that wants it");

        // Delivered, signed: checked here and by Python.
        let delivered = call_with(&w, ok.id, "delivered", "the delivered call").await;
        let hit = receiver
            .hits("ok")
            .into_iter()
            .find(|h| h.body.contains(&delivered.event_id))
            .expect("the receiver got the call");
        let body: serde_json::Value = serde_json::from_str(&hit.body).unwrap();
        assert_eq!(body["type"], "order.shipped", "{label}");
        assert_eq!(body["data"]["order"], 42, "{label}");
        assert_eq!(body["id"], delivered.event_id.as_str(), "{label}");
        assert!(
            body["timestamp"].as_str().unwrap().ends_with('Z'),
            "{label}"
        );
        assert_eq!(hit.headers["platform-webhook-id"], delivered.event_id);
        let sig = &hit.headers["platform-signature"];
        let t: i64 = sig[2..sig.find(',').unwrap()].parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - t).abs() < 60, "{label}");
        platform_webhooks::signature::verify(
            platform_webhooks::Scheme::Platform,
            &secret,
            sig,
            hit.body.as_bytes(),
            chrono::Utc::now().timestamp(),
            300,
        )
        .unwrap();
        if let Some(ok) = python_verifies(&secret, sig, &hit.body) {
            assert!(ok, "{label}: Python's hmac refuses the signature");
            let forged = hit.body.replace("42", "43");
            assert_eq!(python_verifies(&secret, sig, &forged), Some(false));
            let moved = sig.replacen(&format!("t={t}"), &format!("t={}", t + 1), 1);
            assert_eq!(python_verifies(&secret, &moved, &hit.body), Some(false));
        }
        let (_, attempts) = w.call(&delivered.id).await.unwrap().unwrap();
        assert_eq!(attempts.len(), 1, "{label}");
        assert_eq!(attempts[0].status_code, Some(200));
        assert_eq!(attempts[0].response.as_deref(), Some("thanks"));

        // 500: retried with backoff, then failed finally.
        let failed = call_with(&w, fail.id, "failed", "the failing call").await;
        let (_, attempts) = w.call(&failed.id).await.unwrap().unwrap();
        assert_eq!(attempts.len(), 2, "{label}: {attempts:?}");
        assert!(attempts.iter().all(|a| a.status_code == Some(500)));
        assert_eq!(attempts[0].response.as_deref(), Some("boom"));
        assert!(
            attempts[1].created_at - attempts[0].created_at >= 150,
            "{label}: backoff"
        );

        // A receiver that hangs: timed out, retried, failed.
        let hung = call_with(&w, hang.id, "failed", "the hanging call").await;
        let (_, attempts) = w.call(&hung.id).await.unwrap().unwrap();
        assert_eq!(attempts.len(), 2, "{label}: {attempts:?}");
        for a in &attempts {
            assert_eq!(a.status_code, None);
            assert!(a.latency_ms >= 700, "{label}: {a:?}");
            assert!(
                a.error.as_deref().unwrap().contains("no answer within"),
                "{a:?}"
            );
        }

        // Redirects into the private network and the metadata address are
        // refused at once (no retry can help), the target never reached.
        for (sub, what) in [(redirect.id, "private"), (metadata.id, "metadata")] {
            let refused = call_with(&w, sub, "failed", "the refused redirect").await;
            let (_, attempts) = w.call(&refused.id).await.unwrap().unwrap();
            assert_eq!(attempts.len(), 1, "{label}: {attempts:?}");
            let err = attempts[0].error.clone().unwrap();
            assert!(err.contains(what), "{label}: {err}");
            assert!(
                !err.contains("inside") && !err.contains("meta-data"),
                "{err}"
            );
        }
        assert!(w.calls(Some(other.id), 10).await.unwrap().is_empty());

        // The second final failure in a row disables `fail` (limit 2) and
        // tells its owner on the bell; later events skip it.
        assert_eq!(w.subscription(fail.id).await.unwrap().unwrap().failures, 1);
        w.dispatch("order.shipped", serde_json::json!({ "order": 43 }))
            .await
            .unwrap();
        let disabled = wait_for(
            "the disabled subscription",
            Duration::from_secs(20),
            async || w.subscription(fail.id).await.unwrap().filter(|s| !s.active),
        )
        .await;
        assert_eq!(disabled.failures, 2, "{label}");
        assert!(disabled.disabled_reason.unwrap().contains("2 failed calls"));
        let notice = wait_for("the owner's notice", Duration::from_secs(20), async || {
            p.notifications()
                .latest(owner, 10)
                .await
                .unwrap()
                .into_iter()
                .find(|n| {
                    n.title == "Webhook disabled"
                        && n.body.contains(&format!("subscription {} ", fail.id))
                })
        })
        .await;
        assert!(
            !notice.body.contains("/fail"),
            "{label}: no URL path in the notice"
        );
        let before = w.calls(Some(fail.id), 10).await.unwrap().len();
        w.dispatch("order.shipped", serde_json::json!({ "order": 44 }))
            .await
            .unwrap();
        call_with(&w, ok.id, "delivered", "a third delivery").await;
        assert_eq!(w.calls(Some(fail.id), 10).await.unwrap().len(), before);

        // Replay of a finally failed call, to a receiver that now answers:
        // through the service, then through `webhooks:replay`.
        let (flaky, _) = w.subscribe(mk("flaky", &["order.paid"])).await.unwrap();
        w.dispatch("order.paid", serde_json::json!({ "order": 45 }))
            .await
            .unwrap();
        let lost = call_with(&w, flaky.id, "failed", "the flaky call").await;
        receiver.healed.store(true, Ordering::SeqCst);
        w.replay(&lost.id).await.unwrap();
        let back = call_with(&w, flaky.id, "delivered", "the replayed call").await;
        assert_eq!(back.id, lost.id);
        let (_, attempts) = w.call(&lost.id).await.unwrap().unwrap();
        assert_eq!(attempts.len(), 3, "{label}: the replay continues the log");
        assert_eq!(attempts[2].attempt, 3);
        assert_eq!(attempts[2].status_code, Some(200));
        receiver.healed.store(false, Ordering::SeqCst);
        assert!(w.replay("no-such-call").await.is_err());

        let cli = |args: &[&str]| {
            let b = builder(&case, &ns, Registry::default());
            let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            async move { platform_admin::cli::Cli::new(b).run_from(args).await }
        };
        cli(&["app", "webhooks:replay", &failed.id]).await.unwrap();
        cli(&["app", "webhooks:list"]).await.unwrap();
        cli(&["app", "webhooks:calls"]).await.unwrap();
        assert!(cli(&["app", "webhooks:replay", "nope"]).await.is_err());
        // Replayed by hand although its subscription is disabled: one more
        // attempt round (500 twice).
        wait_for(
            "the replayed failed call",
            Duration::from_secs(20),
            async || {
                let (c, a) = w.call(&failed.id).await.unwrap().unwrap();
                (c.status == "failed" && a.len() == 4).then_some(())
            },
        )
        .await;
        p.shutdown().await;
    }
}

#[tokio::test]
async fn resource_events_are_sent_after_commit_with_personal_and_encrypted_values_redacted() {
    let receiver = Receiver::default();
    let base = serve(receiver.clone()).await;
    for case in cases().await {
        let label = case.label.clone();
        let ns = tag();
        case.db.create_tables(&registry()).await;
        let p = builder(&case, &ns, registry())
            .build()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let w = p.get::<Webhooks>().unwrap();
        let (sub, _) = w
            .subscribe(NewSubscription::new(
                format!("{base}/resource-{}", tag()),
                ["invoices.*", "customers.created"],
            ))
            .await
            .unwrap();
        p.start_workers();
        let email = format!("{}@example.com", tag());
        let c = p
            .repo::<platform_tests::domain::Customer>(&Context::system())
            .create(&customer("Ada", &email, "DE"))
            .await
            .unwrap();
        let inv = p
            .repo::<platform_tests::domain::Invoice>(&Context::system())
            .create(&invoice(c.id, 7, "draft", 1234))
            .await
            .unwrap();
        let calls = wait_for("two resource calls", Duration::from_secs(20), async || {
            let calls = w.calls(Some(sub.id), 10).await.unwrap();
            (calls.iter().filter(|c| c.status == "delivered").count() == 2).then_some(calls)
        })
        .await;
        let types: Vec<&str> = calls.iter().map(|c| c.event_type.as_str()).collect();
        assert!(types.contains(&"customers.created"), "{label}: {types:?}");
        assert!(types.contains(&"invoices.created"), "{label}: {types:?}");
        for c in &calls {
            assert!(
                !c.payload.contains(&email),
                "{label}: pii sent: {}",
                c.payload
            );
            assert!(!c.payload.contains("DE89"), "{label}: plaintext IBAN sent");
        }
        let inv_call = calls
            .iter()
            .find(|c| c.event_type == "invoices.created")
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&inv_call.payload).unwrap();
        assert_eq!(body["data"]["record_id"], inv.id.to_string(), "{label}");
        assert_eq!(
            body["data"]["changes"]["amount_cents"]["new"], 1234,
            "{label}"
        );
        assert_eq!(
            body["data"]["changes"]["iban"]["new"], "[redacted]",
            "{label}"
        );
        assert!(
            body["data"]["changes"].get("updated_at").is_none(),
            "{label}"
        );
        p.shutdown().await;
    }
}

#[tokio::test]
async fn a_host_name_resolving_to_loopback_is_refused_without_the_allowance_and_input_is_checked() {
    let receiver = Receiver::default();
    let base = serve(receiver.clone()).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let db = TestDb::sqlite();
    let case = Case {
        db,
        queue_url: None,
        label: "sqlite".into(),
        dir: None,
    };
    let p = Platform::builder()
        .ignore_env()
        .database_url(&case.db.url)
        .app_key(test_key())
        .registry(Registry::default())
        .with(jobs(&case, &tag()))
        // The default policy: public addresses only.
        .with(
            Webhooks::new()
                .ignore_env()
                .max_attempts(3)
                .backoff(Duration::from_millis(100)),
        )
        .build()
        .await
        .unwrap();
    let w = p.get::<Webhooks>().unwrap();
    let path = format!("strict-{}", tag());
    let (sub, _) = w
        .subscribe(NewSubscription::new(
            format!("http://localhost:{port}/{path}"),
            ["*"],
        ))
        .await
        .unwrap();
    p.start_workers();
    w.dispatch("ping", serde_json::json!({})).await.unwrap();
    let refused = call_with(&w, sub.id, "failed", "the refused call").await;
    let (_, attempts) = w.call(&refused.id).await.unwrap().unwrap();
    assert_eq!(attempts.len(), 1, "refused at once: {attempts:?}");
    assert!(attempts[0].error.as_deref().unwrap().contains("loopback"));
    assert!(receiver.hits(&path).is_empty(), "the receiver was reached");

    // Input: malformed URLs, schemes, event names, short secrets.
    for url in ["ftp://example.com/x", "not a url", "http://"] {
        assert!(
            w.subscribe(NewSubscription::new(url, ["*"])).await.is_err(),
            "{url}"
        );
    }
    let long = format!("https://example.com/{}", "a".repeat(3000));
    assert!(
        w.subscribe(NewSubscription::new(long, ["*"]))
            .await
            .is_err()
    );
    for events in [
        vec![],
        vec!["in valid"],
        vec!["a.**"],
        vec![".x"],
        vec!["x'; DROP TABLE"],
    ] {
        assert!(
            w.subscribe(NewSubscription::new(
                "https://example.com/h",
                events.clone()
            ))
            .await
            .is_err(),
            "{events:?}"
        );
    }
    assert!(
        w.subscribe(NewSubscription::new("https://example.com/h", ["*"]).secret("short"))
            .await
            .is_err()
    );
    assert!(w.dispatch("a.*", serde_json::json!({})).await.is_err());
    // A malformed allowance fails the build.
    let err = Platform::builder()
        .ignore_env()
        .database_url(&TestDb::sqlite().url)
        .app_key(test_key())
        .registry(Registry::default())
        .with(jobs(&case, &tag()))
        .with(Webhooks::new().ignore_env().allow_network("10.0.0.0/99"))
        .build()
        .await
        .expect_err("a bad network fails the build");
    assert!(err.to_string().contains("10.0.0.0/99"), "{err}");
    p.shutdown().await;
}

#[tokio::test]
async fn webhook_pages_actions_and_api_routes_are_in_the_permission_matrix() {
    use platform_admin::matrix::PermissionMatrix;
    for case in cases().await {
        let label = case.label.clone();
        let ns = tag();
        let p = builder(&case, &ns, Registry::default())
            .background_tasks(false)
            .build()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let report = PermissionMatrix::new(&p).run().await.unwrap();
        assert!(report.is_ok(), "{label}:\n{}", report.mismatch_table());
        for route in [
            "GET /admin/webhooks",
            "POST /admin/webhooks/actions/create",
            "GET /admin/webhook-calls/{item}",
            "POST /admin/webhook-calls/actions/replay/{item}",
            "POST /admin/webhooks-incoming/actions/rerun/{item}",
            "GET /api/webhooks/subscriptions",
            "POST /api/webhooks/subscriptions",
            "POST /api/webhooks/calls/{id}/replay",
        ] {
            let rows: Vec<_> = report.rows.iter().filter(|r| r.route == route).collect();
            assert!(!rows.is_empty(), "{label}: {route} is not in the matrix");
        }
        p.shutdown().await;
    }
}
