//! Panel routes signed in by a request header, for tests that drive panel
//! pages without going through the sign-in steps (those are tested in
//! `signin.rs` and the browser suite).

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::middleware::Next;
use axum::response::Response;
use platform_core::Platform;

/// The header naming the user (by id) a request is signed in as.
pub const TEST_USER: &str = "x-test-user";

/// `router` (panel routes, state not yet given) behind a layer that signs
/// each request in as the user of its [`TEST_USER`] header, with `csrf` as
/// the session's CSRF token; a request without the header stays
/// anonymous. The state is `platform`.
pub fn signed_in_by_header(
    router: Router<Platform>,
    platform: &Platform,
    csrf: &'static str,
) -> Router {
    let p = platform.clone();
    router
        .layer(axum::middleware::from_fn(
            move |req: Request<Body>, next: Next| sign_in(p.clone(), csrf, req, next),
        ))
        .with_state(platform.clone())
}

async fn sign_in(platform: Platform, csrf: &str, mut req: Request<Body>, next: Next) -> Response {
    let user = req
        .headers()
        .get(TEST_USER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    if let Some(id) = user
        && let Ok(Some(auth)) =
            platform_admin::panel::PanelAuth::for_user(&platform, id, csrf).await
    {
        req.extensions_mut().insert(auth);
    }
    next.run(req).await
}

/// Sends `req` through `router`: the status and the body as text.
pub async fn send(router: &Router, req: Request<Body>) -> (axum::http::StatusCode, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let res = router
        .clone()
        .oneshot(req)
        .await
        .expect("the router answers");
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `s` percent-encoded for a form body or a query value: every byte but
/// the unreserved characters of RFC 3986.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path`, signed in as `user` (see [`signed_in_by_header`]).
pub fn get(path: &str, user: i64) -> Request<Body> {
    Request::get(path)
        .header(TEST_USER, user.to_string())
        .body(Body::empty())
        .expect("a valid request")
}

/// `POST path` with the form `body` (already encoded; the CSRF field is
/// the caller's), signed in as `user`.
pub fn form(path: &str, user: i64, body: impl Into<String>) -> Request<Body> {
    Request::post(path)
        .header(TEST_USER, user.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.into()))
        .expect("a valid request")
}
