//! Record-level policies: the same rule for lists, counts, single records,
//! writes and bulk operations, through the core and through the API.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use platform_core::Platform;
use platform_core::access::NewUser;
use platform_core::context::{Actor, Context};
use platform_core::error::Error;
use platform_core::query::{Count, ListQuery};
use platform_core::repo::Changes;
use platform_core::value::Value;
use platform_tests::all_backends;
use platform_tests::domain::{Note, registry};
use tower::ServiceExt;

async fn user(p: &Platform, email: &str) -> (i64, Context) {
    let console = Context::console();
    let u = p
        .access()
        .create_user(
            &console,
            NewUser {
                email: email.into(),
                name: "U".into(),
                password: "long enough pw".into(),
            },
        )
        .await
        .unwrap();
    p.access()
        .assign_role(&console, u.id, "writer")
        .await
        .unwrap();
    let principal = p.access().principal(u.id).await.unwrap().unwrap();
    (u.id, Context::new(Actor::User(Arc::new(principal))))
}

#[tokio::test]
async fn owner_only_notes_everywhere() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let p = db.platform(registry()).await;
        let console = Context::console();
        p.access().create_role(&console, "writer").await.unwrap();
        let perms: Vec<String> = [
            "view_any",
            "view",
            "create",
            "update",
            "delete",
            "delete_any",
        ]
        .iter()
        .map(|a| format!("{a}_note"))
        .collect();
        p.access()
            .set_role_permissions(&console, "writer", &perms)
            .await
            .unwrap();
        let (ada_id, ada) = user(&p, "ada@example.com").await;
        let (bob_id, bob) = user(&p, "bob@example.com").await;

        // The owner is filled from the policy.
        let notes = p.records("notes", &ada).unwrap();
        let mine = notes
            .create(Changes::new().set("body", "ada's secret"))
            .await
            .unwrap();
        assert_eq!(mine.get("owner_id"), Some(&Value::Int(ada_id)), "{backend}");
        for i in 0..3 {
            p.records("notes", &bob)
                .unwrap()
                .create(Changes::new().set("body", format!("bob {i}")))
                .await
                .unwrap();
        }
        // Creating a note for someone else is refused.
        let err = p
            .records("notes", &bob)
            .unwrap()
            .create(Changes::new().set("body", "forged").set("owner_id", ada_id))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::PermissionDenied { .. }),
            "{backend}: {err:?}"
        );

        let bobs = p.records("notes", &bob).unwrap();
        let page = bobs.list(&ListQuery::new().with_count()).await.unwrap();
        assert_eq!(page.items.len(), 3, "{backend}");
        assert_eq!(page.total, Some(Count::Exact(3)));
        assert!(
            page.items
                .iter()
                .all(|n| n.get("owner_id") == Some(&Value::Int(bob_id)))
        );
        // Ada's note does not exist for Bob: find, update, delete, search.
        let id = mine.id().clone();
        assert!(matches!(
            bobs.find(id.clone()).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            bobs.update(id.clone(), Changes::new().set("body", "x"))
                .await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            bobs.delete(id.clone()).await,
            Err(Error::NotFound { .. })
        ));
        assert!(
            bobs.list(&ListQuery::new().search("secret"))
                .await
                .unwrap()
                .items
                .is_empty()
        );
        // Bob cannot give his note away either.
        let his = page.items[0].id().clone();
        assert!(matches!(
            bobs.update(his.clone(), Changes::new().set("owner_id", ada_id))
                .await,
            Err(Error::PermissionDenied { .. })
        ));
        // Bulk operations stay inside the scope.
        assert_eq!(
            bobs.delete_where(&ListQuery::new()).await.unwrap(),
            3,
            "{backend}"
        );
        assert!(
            notes.find(id.clone()).await.is_ok(),
            "{backend}: Ada's note survived Bob's bulk delete"
        );
        // The console sees everything.
        let all = p
            .repo::<Note>(&console)
            .list(&ListQuery::new().with_count())
            .await
            .unwrap();
        assert_eq!(all.total, Some(Count::Exact(1)), "{backend}");

        // The API applies the same rule.
        let token = p
            .access()
            .create_token(&console, bob_id, "t", &[], None)
            .await
            .unwrap();
        let app = platform_admin::app_router(&p)
            .unwrap()
            .with_state(p.clone());
        let req = |uri: String| {
            Request::get(uri)
                .header("authorization", format!("Bearer {}", token.plain_text))
                .body(Body::empty())
                .unwrap()
        };
        let res = app
            .clone()
            .oneshot(req(format!("/api/notes/{}", id.display())))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{backend}");
        let res = app.clone().oneshot(req("/api/notes".into())).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: serde_json::Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(
            body["data"].as_array().map(Vec::len),
            Some(0),
            "{backend}: {body}"
        );
        let res = app
            .clone()
            .oneshot(req(format!(
                "/api/audits?resource=notes&record={}",
                id.display()
            )))
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "{backend}: Ada's history is hidden from Bob"
        );
    }
}
