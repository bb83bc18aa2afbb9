//! The notification settings page of the panel (platform-notify): each
//! kind of notification by each channel, saved per user and minded by
//! `notify`; hostile forms refused with nothing written.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::Context;
use platform_core::mail::MemoryMailer;
use platform_core::notification::Notice;
use platform_core::resource::Registry;
use platform_notify::{
    MailMessage, Notification, Notifications, Notifier, Recipient, register_notification,
};
use platform_tests::{all_backends, test_key};
use serde::{Deserialize, Serialize};

/// Goes to the bell and by mail.
#[derive(Serialize, Deserialize)]
struct ReportReady {
    title: String,
}

impl Notification for ReportReady {
    const NAME: &'static str = "report_ready";
    fn channels(&self, _to: &Recipient) -> Vec<&str> {
        vec!["database", "mail"]
    }
    fn to_database(&self, _to: &Recipient) -> Option<Notice> {
        Some(Notice::new(&self.title, "It is ready."))
    }
    fn to_mail(&self, _to: &Recipient) -> Option<MailMessage> {
        Some(MailMessage::new(&self.title).line("It is ready."))
    }
}
register_notification!(ReportReady);

fn panel(p: &Platform) -> axum::Router {
    platform_tests::panel::signed_in_by_header(
        axum::Router::new().nest(
            "/admin",
            platform_admin::panel_router_with(
                platform_admin::PanelConfig::new().with_capabilities(p),
            ),
        ),
        p,
        "csrf-t",
    )
}

use platform_tests::panel::send;

fn page(user: i64) -> Request<Body> {
    platform_tests::panel::get("/admin/notification-settings", user)
}

fn save(user: i64, form: &str) -> Request<Body> {
    platform_tests::panel::form(
        "/admin/notification-settings/actions/save",
        user,
        format!("_csrf=csrf-t&{form}"),
    )
}

#[tokio::test]
async fn a_user_switches_channels_per_kind_and_notify_minds_it() {
    for db in all_backends().await {
        let label = db.backend.name();
        let mailer = std::sync::Arc::new(MemoryMailer::new());
        let p = Platform::builder()
            .ignore_env()
            .database_url(&db.url)
            .app_key(test_key())
            .registry(Registry::default())
            .background_tasks(false)
            .mailer(mailer.clone() as std::sync::Arc<dyn platform_core::mail::Mailer>)
            .with(Notifications::new().without_queue())
            .build()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let console = Context::console();
        let make = |email: &'static str| {
            let access = p.access().clone();
            let console = console.clone();
            async move {
                access
                    .create_user(
                        &console,
                        NewUser {
                            email: email.into(),
                            name: email.into(),
                            password: "correct horse battery staple".into(),
                        },
                    )
                    .await
                    .unwrap()
                    .id
            }
        };
        let (ann, bob) = (make("ann@example.com").await, make("bob@example.com").await);
        let app = panel(&p);

        // The page: one row per kind, one box per channel (not `log`), all on.
        let (s, html) = send(&app, page(ann)).await;
        assert_eq!(s, StatusCode::OK, "{label}: {html}");
        assert!(html.contains("data-kind=\"report_ready\""), "{label}");
        assert!(html.contains("Report ready"), "{label}");
        for c in ["database", "mail", "broadcast"] {
            let b = format!("value=\"report_ready|{c}\" checked");
            assert!(html.contains(&b), "{label}: {b}");
        }
        assert!(!html.contains("report_ready|log"), "{label}");
        // Anonymous: no page.
        let (s, _) = send(
            &app,
            Request::get("/admin/notification-settings")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_ne!(s, StatusCode::OK, "{label}");

        // Ann keeps mail only for this kind.
        let (s, body) = send(&app, save(ann, "kinds=report_ready&on=report_ready%7Cmail")).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{label}: {body}");
        let prefs = p.notifications();
        assert!(
            !prefs
                .channel_enabled(ann, "report_ready", "database")
                .await
                .unwrap()
        );
        assert!(
            prefs
                .channel_enabled(ann, "report_ready", "mail")
                .await
                .unwrap()
        );
        assert!(
            !prefs
                .channel_enabled(ann, "report_ready", "broadcast")
                .await
                .unwrap()
        );
        // Bob's are his own.
        assert!(
            prefs
                .channel_enabled(bob, "report_ready", "database")
                .await
                .unwrap()
        );
        let (_, html) = send(&app, page(ann)).await;
        assert!(
            html.contains("value=\"report_ready|mail\" checked"),
            "{label}"
        );
        assert!(
            !html.contains("value=\"report_ready|database\" checked"),
            "{label}"
        );

        // `notify` minds it: Ann gets the mail and no bell entry, Bob both.
        let n = p.get::<Notifier>().unwrap();
        n.notify(
            vec![ann, bob],
            &ReportReady {
                title: "Q3 report".into(),
            },
        )
        .await
        .unwrap();
        assert!(prefs.unread(ann, 10).await.unwrap().is_empty(), "{label}");
        assert_eq!(prefs.unread(bob, 10).await.unwrap().len(), 1, "{label}");
        let to: Vec<String> = mailer.sent().iter().map(|m| m.to.clone()).collect();
        assert!(
            to.iter().any(|t| t.contains("ann@example.com")),
            "{label}: {to:?}"
        );
        assert!(
            to.iter().any(|t| t.contains("bob@example.com")),
            "{label}: {to:?}"
        );

        // Hostile forms: an unknown kind, an unknown channel, a malformed
        // box; each refused whole, nothing written.
        for form in [
            "kinds=report_ready,ghost&on=report_ready%7Cdatabase",
            "kinds=report_ready&on=report_ready%7Cdatabase&on=report_ready%7Ctelegram",
            "kinds=report_ready&on=report_ready%7Cdatabase&on=nonsense",
            "kinds=report_ready&on=%3Cscript%3E%7Cdatabase",
        ] {
            let (s, _) = send(&app, save(ann, form)).await;
            assert!(
                s == StatusCode::SEE_OTHER || s.is_client_error(),
                "{label}: {s}"
            );
            assert!(
                !prefs
                    .channel_enabled(ann, "report_ready", "database")
                    .await
                    .unwrap(),
                "{label}: {form} was written"
            );
        }
        // Without the CSRF token: refused.
        let (s, _) = send(
            &app,
            platform_tests::panel::form(
                "/admin/notification-settings/actions/save",
                ann,
                "kinds=report_ready&on=report_ready%7Cdatabase",
            ),
        )
        .await;
        assert!(s.is_client_error(), "{label}: {s}");
        assert!(
            !prefs
                .channel_enabled(ann, "report_ready", "database")
                .await
                .unwrap()
        );
        p.shutdown().await;
    }
}
