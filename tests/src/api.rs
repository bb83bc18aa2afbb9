//! The JSON API (`platform_admin::api_router`) nested at `/api` over a
//! platform on one test database, driven through
//! `tower::ServiceExt::oneshot` without a port.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use platform_core::Platform;
use platform_core::context::Context;
use tower::ServiceExt;

use crate::TestDb;
use crate::domain::{Customer, customer, registry};

/// An answer of the API.
#[derive(Debug)]
pub struct Res {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as JSON (`null` when empty).
    pub body: serde_json::Value,
}

impl Res {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    /// The first error code of `field` in a validation error body.
    pub fn field_code(&self, field: &str) -> &str {
        self.body["error"]["fields"][field][0]["code"]
            .as_str()
            .unwrap_or_default()
    }
}

/// The app under test: the API nested at `/api`, over a platform with a
/// super administrator's token.
#[derive(Debug)]
pub struct App {
    /// The router.
    pub router: Router,
    /// The platform.
    pub platform: Platform,
    /// A super administrator's token.
    pub admin: String,
    /// The back end's name.
    pub backend: &'static str,
}

impl App {
    /// The API over a fresh platform on `db` with the test domain.
    pub async fn new(db: &TestDb) -> Self {
        Self::with_registry(db, registry()).await
    }

    /// The API over a fresh platform on `db` with `registry`.
    pub async fn with_registry(db: &TestDb, registry: platform_core::Registry) -> Self {
        let platform = db.platform(registry).await;
        let router = Router::new()
            .nest("/api", platform_admin::api_router())
            .with_state(platform.clone());
        let mut app = Self {
            router,
            platform,
            admin: String::new(),
            backend: db.backend.name(),
        };
        let (_, token) = app
            .user("admin@example.com", Some("super_admin"), &[])
            .await;
        app.admin = token;
        app
    }

    /// A user with `role` (created with `permissions` unless it exists) and
    /// a token with `abilities` (`*` when empty).
    pub async fn user(&self, email: &str, role: Option<&str>, abilities: &[&str]) -> (i64, String) {
        crate::users::with_token(&self.platform, email, role, abilities).await
    }

    /// Creates role `name` with `permissions`.
    pub async fn role(&self, name: &str, permissions: &[&str]) {
        crate::users::role(&self.platform, name, permissions).await;
    }

    /// Sends a request.
    pub async fn send(&self, req: Request<Body>) -> Res {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{}: not JSON ({e}): {}",
                    self.backend,
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Res {
            status,
            headers,
            body,
        }
    }

    /// A request builder with an optional bearer token.
    pub fn request(method: Method, uri: &str, token: Option<&str>) -> axum::http::request::Builder {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b
    }

    /// `GET` as `token`.
    pub async fn get_as(&self, uri: &str, token: Option<&str>) -> Res {
        self.send(
            Self::request(Method::GET, uri, token)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// `GET` as the administrator.
    pub async fn get(&self, uri: &str) -> Res {
        self.get_as(uri, Some(&self.admin.clone())).await
    }

    /// A JSON request as `token`.
    pub async fn json_as(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Res {
        self.send(
            Self::request(method, uri, token)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
    }

    /// A JSON request as the administrator.
    pub async fn json(&self, method: Method, uri: &str, body: &serde_json::Value) -> Res {
        self.json_as(method, uri, Some(&self.admin.clone()), body)
            .await
    }

    /// `DELETE` as the administrator.
    pub async fn delete(&self, uri: &str) -> Res {
        self.send(
            Self::request(Method::DELETE, uri, Some(&self.admin))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Closes the pool, which waits for every connection: a transaction
    /// dropped by a failed write is rolled back on a spawned task, which
    /// must run before the test database is dropped (its drop blocks).
    pub async fn finish(self) {
        self.platform.shutdown().await;
    }

    /// Creates a customer (as the system).
    pub async fn customer(&self, name: &str, email: &str) -> i64 {
        self.platform
            .repo::<Customer>(&Context::system())
            .create(&customer(name, email, "GB"))
            .await
            .unwrap()
            .id
    }
}
