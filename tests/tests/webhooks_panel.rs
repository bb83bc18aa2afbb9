//! The webhook panel pages driven as a browser would (forms posted with
//! the session's CSRF token) on every back end: a manager creates,
//! edits, deactivates and reactivates a subscription, reads the call log
//! and a call's attempts, and replays a delivered call; a viewer sees the
//! pages and changes nothing; hostile forms are refused and write nothing.

use platform_tests::panel::enc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use platform_core::Platform;
use platform_core::resource::Registry;
use platform_notify::Notifications;
use platform_tests::test_key;
use platform_tests::users::with_role;
use platform_tests::webhooks::{cases, jobs, tag, wait_for};
use platform_webhooks::Webhooks;

const CSRF: &str = "csrf-w";

fn panel(p: &Platform) -> axum::Router {
    platform_tests::panel::signed_in_by_header(
        axum::Router::new().nest(
            "/admin",
            platform_admin::panel_router_with(
                platform_admin::PanelConfig::new().with_capabilities(p),
            ),
        ),
        p,
        CSRF,
    )
}

async fn get(app: &axum::Router, user: i64, path: &str) -> (StatusCode, String) {
    send(app, platform_tests::panel::get(path, user)).await
}

async fn post(app: &axum::Router, user: i64, path: &str, form: &str) -> (StatusCode, String) {
    send(
        app,
        platform_tests::panel::form(path, user, format!("_csrf={CSRF}&{form}")),
    )
    .await
}

use platform_tests::panel::send;

#[tokio::test]
async fn a_manager_runs_webhooks_from_the_panel_and_a_viewer_only_looks() {
    for case in cases().await {
        let label = case.label.clone();
        let hits = Arc::new(AtomicUsize::new(0));
        let url = platform_tests::webhooks::counting_receiver(hits.clone()).await;
        let p = Platform::builder()
            .ignore_env()
            .database_url(&case.db.url)
            .app_key(test_key())
            .registry(Registry::default())
            .max_connections(8)
            .with(jobs(&case, &tag()))
            .with(Notifications::new())
            .with(
                Webhooks::new()
                    .ignore_env()
                    .allow_loopback()
                    .timeout(Duration::from_secs(2)),
            )
            .build()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        p.start_workers();
        let w = p.get::<Webhooks>().unwrap();
        let manager = with_role(
            &p,
            "hooks-manager@example.com",
            Some(("hooks_manager", &["view_webhooks", "manage_webhooks"])),
        )
        .await;
        let viewer = with_role(
            &p,
            "hooks-viewer@example.com",
            Some(("hooks_viewer", &["view_webhooks"])),
        )
        .await;
        let nobody = with_role(&p, "hooks-nobody@example.com", None).await;
        let app = panel(&p);

        // The empty list with its form.
        let (s, html) = get(&app, manager, "/admin/webhooks").await;
        assert_eq!(s, StatusCode::OK, "{label}: {html}");
        assert!(html.contains("No subscriptions."), "{label}");
        assert!(html.contains("id=\"webhook-create\""), "{label}");
        let (s, _) = get(&app, nobody, "/admin/webhooks").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{label}");

        // A viewer cannot create; hostile forms are refused; nothing written.
        let form = format!("url={}&events=order.paid&description=Orders", enc(&url));
        let (s, _) = post(&app, viewer, "/admin/webhooks/actions/create", &form).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{label}");
        for hostile in [
            "url=javascript%3Aalert(1)&events=order.paid".to_owned(),
            format!("url={}&events={}", enc(&url), enc("x'; DROP TABLE")),
            format!("url={}&events=", enc(&url)),
            format!("url={}&events=a.**", enc(&"h".repeat(5_000))),
        ] {
            let (s, body) = post(&app, manager, "/admin/webhooks/actions/create", &hostile).await;
            assert!(
                s.is_client_error() || s == StatusCode::SEE_OTHER,
                "{label}: {s} {body}"
            );
        }
        assert!(w.subscriptions().await.unwrap().is_empty(), "{label}");

        // Created from the form: listed, owned by the manager.
        let (s, body) = post(&app, manager, "/admin/webhooks/actions/create", &form).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}: {body}");
        let subs = w.subscriptions().await.unwrap();
        assert_eq!(subs.len(), 1, "{label}");
        let sub = subs[0].clone();
        assert_eq!(sub.events, ["order.paid"], "{label}");
        assert_eq!(sub.owner_id, Some(manager), "{label}");
        let (_, html) = get(&app, viewer, "/admin/webhooks").await;
        assert!(
            html.contains(&format!("data-subscription=\"{}\"", sub.id)),
            "{label}: {html}"
        );
        assert!(html.contains(&sub.secret_hint), "{label}");

        // Edited from its page.
        let edit = format!(
            "url={}&events={}&description=Paid+and+shipped",
            enc(&url),
            enc("order.paid, order.shipped")
        );
        let path = format!("/admin/webhooks/actions/update/{}", sub.id);
        let (s, _) = post(&app, viewer, &path, &edit).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{label}");
        let (s, body) = post(&app, manager, &path, &edit).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}: {body}");
        let sub = w.subscription(sub.id).await.unwrap().unwrap();
        assert_eq!(sub.events, ["order.paid", "order.shipped"], "{label}");
        assert_eq!(sub.description, "Paid and shipped", "{label}");
        let (s, html) = get(&app, viewer, &format!("/admin/webhooks/{}", sub.id)).await;
        assert_eq!(s, StatusCode::OK, "{label}");
        assert!(html.contains("order.paid, order.shipped"), "{label}");

        // A call, delivered; its log and attempts on the calls pages.
        assert_eq!(
            w.dispatch("order.shipped", serde_json::json!({"order": 7}))
                .await
                .unwrap(),
            1,
            "{label}"
        );
        let call = wait_for(
            &format!("{label}: the call delivered"),
            Duration::from_secs(20),
            async || {
                w.calls(Some(sub.id), 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|c| c.status == "delivered")
            },
        )
        .await;
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{label}");
        let (s, html) = get(&app, viewer, "/admin/webhook-calls").await;
        assert_eq!(s, StatusCode::OK, "{label}");
        assert!(html.contains(&call.id), "{label}: {html}");
        let (s, html) = get(&app, viewer, &format!("/admin/webhook-calls/{}", call.id)).await;
        assert_eq!(s, StatusCode::OK, "{label}");
        assert!(html.contains("delivered"), "{label}");
        assert!(html.contains("200"), "{label}: the attempt's status");
        let (s, _) = get(&app, viewer, "/admin/webhook-calls/not-a-call").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{label}");

        // Replayed from the panel by the manager only.
        let replay = format!("/admin/webhook-calls/actions/replay/{}", call.id);
        let (s, _) = post(&app, viewer, &replay, "").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{label}");
        let (s, body) = post(&app, manager, &replay, "").await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}: {body}");
        wait_for(
            &format!("{label}: the replay received"),
            Duration::from_secs(20),
            async || (hits.load(Ordering::SeqCst) == 2).then_some(()),
        )
        .await;

        // Deactivated, then activated again.
        let off = format!("/admin/webhooks/actions/deactivate/{}", sub.id);
        let (s, _) = post(&app, manager, &off, "").await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}");
        assert!(
            !w.subscription(sub.id).await.unwrap().unwrap().active,
            "{label}"
        );
        let (_, html) = get(&app, viewer, "/admin/webhooks").await;
        assert!(html.contains("inactive"), "{label}");
        let on = format!("/admin/webhooks/actions/activate/{}", sub.id);
        let (s, _) = post(&app, manager, &on, "").await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}");
        assert!(
            w.subscription(sub.id).await.unwrap().unwrap().active,
            "{label}"
        );

        // An action without the session's CSRF token changes nothing.
        let (s, _) = send(
            &app,
            platform_tests::panel::form(&off, manager, "_csrf=forged"),
        )
        .await;
        assert!(s.is_client_error(), "{label}: {s}");
        assert!(
            w.subscription(sub.id).await.unwrap().unwrap().active,
            "{label}"
        );
        p.shutdown().await;
    }
}
