//! The health routes on every configured database, and when the database
//! is gone.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use platform_tests::{all_backends, domain::registry};
use tower::ServiceExt;

async fn get(app: &axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
    let res = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn health_reports_the_database() {
    for db in all_backends().await {
        let backend = db.backend.name();
        let p = db.platform(registry()).await;
        let app = platform_admin::app_router(&p)
            .unwrap()
            .with_state(p.clone());
        let (status, body) = get(&app, "/health").await;
        assert_eq!(status, StatusCode::OK, "{backend}: {body}");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["checks"][0]["name"], "database");
        assert_eq!(get(&app, "/health/ready").await.0, StatusCode::OK);
        assert_eq!(get(&app, "/health/live").await.0, StatusCode::OK);
        // The database goes away: ready and health fail, live does not.
        p.db().close().await;
        let (status, body) = get(&app, "/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{backend}: {body}");
        assert_eq!(body["checks"][0]["status"], "fail");
        assert_eq!(
            get(&app, "/health/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get(&app, "/health/live").await.0, StatusCode::OK);
    }
}
