//! Incoming webhooks through the real router, on SQLite, PostgreSQL and
//! MariaDB: the three schemes signed by Python's `hmac`, bad signatures,
//! stale timestamps, replayed ids, oversized bodies, unknown sources and
//! missing ids (nothing stored, nothing processed), a failing handler and
//! re-runs (service and command), pruning.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use platform_core::Platform;
use platform_core::error::Error;
use platform_core::resource::Registry;
use platform_tests::test_key;
use platform_tests::webhooks::{cases, jobs, python_sign, tag, wait_for};
use platform_webhooks::signature::{sign, sign_github};
use platform_webhooks::{IncomingCall, IncomingSource, Scheme, Webhooks};
use tower::ServiceExt;

const SHOP: &str = "shop-secret-0123456789";
const STRIPE: &str = "whsec_stripe_0123456789";
const GITHUB: &str = "github-secret-0123456789";

/// What the handlers saw; a body containing `explode` fails while
/// `explode` is set.
#[derive(Clone, Default)]
struct Seen {
    calls: Arc<Mutex<Vec<IncomingCall>>>,
    explode: Arc<std::sync::atomic::AtomicBool>,
}

impl Seen {
    fn count(&self, event_id: &str) -> usize {
        let calls = self.calls.lock().unwrap();
        calls.iter().filter(|c| c.event_id == event_id).count()
    }
    fn source(&self, name: &str) -> IncomingSource {
        let scheme = match name {
            "stripe" => Scheme::Stripe,
            "github" => Scheme::GitHub,
            _ => Scheme::Platform,
        };
        let secret = match name {
            "stripe" => STRIPE,
            "github" => GITHUB,
            _ => SHOP,
        };
        let seen = self.clone();
        IncomingSource::new(name, secret, scheme)
            .tolerance(Duration::from_secs(300))
            .handler(move |call: IncomingCall| {
                let seen = seen.clone();
                async move {
                    if call.payload.contains("explode")
                        && seen.explode.load(std::sync::atomic::Ordering::SeqCst)
                    {
                        return Err(Error::invalid("payload", "invalid", "the handler refuses"));
                    }
                    seen.calls.lock().unwrap().push(call);
                    Ok(())
                }
            })
    }
}

fn sig(scheme: &str, secret: &str, t: i64, body: &[u8]) -> String {
    python_sign(scheme, secret, t, body).unwrap_or_else(|| match scheme {
        "github" => sign_github(secret, body),
        _ => sign(secret, t, body),
    })
}

async fn post(
    app: &axum::Router,
    source: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let mut req =
        Request::post(format!("/webhooks/in/{source}")).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn incoming_calls_are_verified_deduplicated_stored_processed_and_rerun() {
    for case in cases().await {
        let label = case.label.clone();
        let ns = tag();
        let seen = Seen::default();
        let builder = |seen: &Seen| {
            Platform::builder()
                .ignore_env()
                .database_url(&case.db.url)
                .app_key(test_key())
                .registry(Registry::default())
                .max_connections(8)
                .with(jobs(&case, &ns))
                .with(
                    Webhooks::new()
                        .ignore_env()
                        .max_body(2048)
                        .max_attempts(1)
                        .source(seen.source("shop"))
                        .source(seen.source("stripe"))
                        .source(seen.source("github")),
                )
        };
        let p = builder(&seen)
            .build()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let w = p.get::<Webhooks>().unwrap();
        p.start_workers();
        let app: axum::Router = platform_admin::app_router(&p)
            .unwrap()
            .with_state(p.clone());
        let stored = async || w.incoming_calls(None, 1000).await.unwrap().len();

        // The platform's scheme, signed by Python.
        let id = format!("evt_{}", tag());
        let body = format!(r#"{{"id":"{id}","type":"order.shipped","data":{{"order":1}}}}"#);
        let t = now();
        let headers = vec![
            (
                "Platform-Signature",
                sig("platform", SHOP, t, body.as_bytes()),
            ),
            ("Platform-Webhook-Id", id.clone()),
        ];
        let (status, json) = post(&app, "shop", &headers, body.clone().into_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{label}: {json}");
        assert_eq!(json["status"], "accepted", "{label}");
        wait_for("the handler", Duration::from_secs(20), async || {
            (seen.count(&id) == 1).then_some(())
        })
        .await;
        let call_id = json["id"].as_str().unwrap().to_owned();
        let call = wait_for("processed", Duration::from_secs(20), async || {
            w.incoming_call(&call_id)
                .await
                .unwrap()
                .filter(|c| c.status == "processed")
        })
        .await;
        assert_eq!(call.json()["data"]["order"], 1, "{label}");
        assert!(
            !call.headers.contains("v1="),
            "{label}: the signature is not kept"
        );

        // The same id again: 200, not processed again.
        let (status, json) = post(&app, "shop", &headers, body.clone().into_bytes()).await;
        assert_eq!(
            (status, json["status"].as_str()),
            (StatusCode::OK, Some("duplicate"))
        );
        let count = stored().await;
        assert_eq!(count, 1, "{label}");

        // Refused, nothing stored: a tampered body, another secret, a stale
        // or future timestamp, no header, a garbage header.
        let tampered = body.replace("\"order\":1", "\"order\":2");
        let other_id = vec![("Platform-Webhook-Id", format!("evt_{}", tag()))];
        let cases_401: Vec<(Vec<(&str, String)>, String)> = vec![
            (
                [headers[..1].to_vec(), other_id.clone()].concat(),
                tampered.clone(),
            ),
            (
                [
                    vec![(
                        "Platform-Signature",
                        sig("platform", "wrong-secret", t, body.as_bytes()),
                    )],
                    other_id.clone(),
                ]
                .concat(),
                body.clone(),
            ),
            (
                [
                    vec![(
                        "Platform-Signature",
                        sig("platform", SHOP, t - 1000, body.as_bytes()),
                    )],
                    other_id.clone(),
                ]
                .concat(),
                body.clone(),
            ),
            (
                [
                    vec![(
                        "Platform-Signature",
                        sig("platform", SHOP, t + 1000, body.as_bytes()),
                    )],
                    other_id.clone(),
                ]
                .concat(),
                body.clone(),
            ),
            (other_id.clone(), body.clone()),
            (
                [
                    vec![("Platform-Signature", "t=x,v1=zz,,==".to_owned())],
                    other_id.clone(),
                ]
                .concat(),
                body.clone(),
            ),
        ];
        for (i, (h, b)) in cases_401.into_iter().enumerate() {
            let (status, json) = post(&app, "shop", &h, b.into_bytes()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{label}: case {i}: {json}"
            );
            if i == 2 {
                assert!(
                    json["error"].as_str().unwrap().contains("tolerance"),
                    "{json}"
                );
            }
        }
        // Oversized (with and without a truthful length), unknown source,
        // no event id.
        let big = vec![b'x'; 4096];
        let h = vec![
            ("Platform-Signature", sig("platform", SHOP, t, &big)),
            other_id[0].clone(),
        ];
        assert_eq!(
            post(&app, "shop", &h, big).await.0,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{label}"
        );
        assert_eq!(
            post(&app, "nope", &headers, body.clone().into_bytes())
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        let (status, _) = post(&app, "shop", &headers[..1], body.clone().into_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: no event id");
        assert_eq!(
            stored().await,
            count,
            "{label}: refused calls are not stored"
        );

        // Stripe: the id is in the body.
        let sid = format!("evt_{}", tag());
        let sbody = format!(r#"{{"id":"{sid}","object":"event","type":"charge.succeeded"}}"#);
        let sh = vec![(
            "Stripe-Signature",
            sig("stripe", STRIPE, now(), sbody.as_bytes()),
        )];
        let (status, json) = post(&app, "stripe", &sh, sbody.clone().into_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{label}: {json}");
        let (_, json) = post(&app, "stripe", &sh, sbody.clone().into_bytes()).await;
        assert_eq!(json["status"], "duplicate", "{label}");
        let bad = vec![(
            "Stripe-Signature",
            sig("stripe", SHOP, now(), sbody.as_bytes()),
        )];
        assert_eq!(
            post(&app, "stripe", &bad, sbody.clone().into_bytes())
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        // A Platform-style header is not Stripe's.
        let wrong = vec![("Platform-Signature", sh[0].1.clone())];
        assert_eq!(
            post(&app, "stripe", &wrong, sbody.into_bytes()).await.0,
            StatusCode::UNAUTHORIZED
        );

        // GitHub: no timestamp, the id in X-GitHub-Delivery.
        let gid = uuid::Uuid::new_v4().to_string();
        let gbody = br#"{"action":"opened","number":7}"#.to_vec();
        let gh = vec![
            ("X-Hub-Signature-256", sig("github", GITHUB, 0, &gbody)),
            ("X-GitHub-Delivery", gid.clone()),
            ("X-GitHub-Event", "pull_request".to_owned()),
        ];
        let (status, json) = post(&app, "github", &gh, gbody.clone()).await;
        assert_eq!(status, StatusCode::OK, "{label}: {json}");
        let mut gbad = gh.clone();
        gbad[0].1 = sig("github", "not-the-secret", 0, &gbody);
        gbad[1].1 = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            post(&app, "github", &gbad, gbody).await.0,
            StatusCode::UNAUTHORIZED
        );
        wait_for(
            "stripe and github processed",
            Duration::from_secs(20),
            async || (seen.count(&sid) == 1 && seen.count(&gid) == 1).then_some(()),
        )
        .await;
        let gcall = w
            .incoming_calls(Some("github"), 10)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.event_id == gid)
            .unwrap();
        assert!(gcall.headers.contains("pull_request"), "{label}");

        // A failing handler: stored, marked failed with its error; re-run
        // once it works (service), and again through the command.
        seen.explode
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let eid = format!("evt_{}", tag());
        let ebody = format!(r#"{{"explode":true,"id":"{eid}"}}"#);
        let eh = vec![
            (
                "Platform-Signature",
                sig("platform", SHOP, now(), ebody.as_bytes()),
            ),
            ("Platform-Webhook-Id", eid.clone()),
        ];
        let (status, json) = post(&app, "shop", &eh, ebody.into_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        let ecall = json["id"].as_str().unwrap().to_owned();
        let failed = wait_for("the failed call", Duration::from_secs(20), async || {
            w.incoming_call(&ecall)
                .await
                .unwrap()
                .filter(|c| c.status == "failed")
        })
        .await;
        assert!(
            failed.error.unwrap().contains("the handler refuses"),
            "{label}"
        );
        assert_eq!(seen.count(&eid), 0);
        seen.explode
            .store(false, std::sync::atomic::Ordering::SeqCst);
        w.rerun(&ecall).await.unwrap();
        wait_for("the re-run call", Duration::from_secs(20), async || {
            (seen.count(&eid) == 1).then_some(())
        })
        .await;
        let cli = |args: Vec<String>| {
            let b = builder(&seen);
            async move { platform_admin::cli::Cli::new(b).run_from(args).await }
        };
        cli(vec!["app".into(), "webhooks:rerun".into(), ecall.clone()])
            .await
            .unwrap();
        wait_for("the second re-run", Duration::from_secs(20), async || {
            (seen.count(&eid) == 2).then_some(())
        })
        .await;
        assert!(
            cli(vec!["app".into(), "webhooks:rerun".into(), "nope".into()])
                .await
                .is_err()
        );
        assert!(w.rerun("nope").await.is_err());

        // Pruning: nothing is old enough by default; everything at age 0.
        assert_eq!(w.prune().await.unwrap(), 0, "{label}");
        cli(vec!["app".into(), "webhooks:prune".into()])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            w.prune_older_than(Duration::ZERO).await.unwrap() >= 4,
            "{label}"
        );
        assert_eq!(stored().await, 0, "{label}");
        p.shutdown().await;
    }
}

#[tokio::test]
async fn a_bad_source_name_or_short_secret_fails_the_build() {
    for source in [
        IncomingSource::new("bad name", "long-enough-secret", Scheme::Platform),
        IncomingSource::new("ok", "short", Scheme::GitHub),
    ] {
        let db = platform_tests::TestDb::sqlite();
        let err = Platform::builder()
            .ignore_env()
            .database_url(&db.url)
            .app_key(test_key())
            .registry(Registry::default())
            .with(platform_jobs::Jobs::new().ignore_env())
            .with(Webhooks::new().ignore_env().source(source))
            .build()
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("webhooks"), "{err}");
    }
}
