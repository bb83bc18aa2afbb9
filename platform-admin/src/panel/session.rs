//! The panel's side of sessions: the cookie, resolving it to a signed-in
//! user once per request, and the CSRF token a request's forms must carry.
//!
//! The session itself (server-side, hashed id, rotation on sign-in, expiry)
//! lives in [`platform_core::auth::Sessions`]. The cookie is `HttpOnly`,
//! `SameSite=Lax`, scoped to the panel's path, and `Secure` in production
//! (or with `PLATFORM_SECURE_COOKIES=1`).
//!
//! CSRF: every form body the panel reads (`FormData`) must
//! carry `_csrf` equal to the session's token ([`ExpectedCsrf`], set while
//! the request's session is resolved); a form without a session, without
//! the field or with another session's token is refused before any handler
//! runs. No `GET` changes state.

use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use platform_core::Platform;
use platform_core::auth::Session;

use super::render::cookies;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "platform_session";

/// The CSRF token the forms of this request must carry (a request
/// extension set when the session is resolved).
#[derive(Clone, Debug)]
pub struct ExpectedCsrf(pub String);

/// The request's session, resolved once (a request extension).
#[derive(Clone, Debug, Default)]
pub(crate) struct Resolved {
    pub(crate) token: Option<String>,
    pub(crate) session: Option<Session>,
}

/// The session of the request's cookie (loaded once per request and kept
/// in its extensions). A database error is returned as is.
pub(crate) async fn resolve(
    parts: &mut Parts,
    platform: &Platform,
) -> platform_core::Result<Resolved> {
    if let Some(r) = parts.extensions.get::<Resolved>() {
        return Ok(r.clone());
    }
    let token = cookies(&parts.headers)
        .into_iter()
        .rev()
        .find(|(k, _)| k == SESSION_COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128);
    let resolved = match token {
        None => Resolved::default(),
        Some(t) => match platform.auth().sessions().load(&t).await? {
            Some(s) => Resolved {
                token: Some(t),
                session: Some(s),
            },
            None => Resolved::default(),
        },
    };
    if let Some(s) = &resolved.session {
        parts
            .extensions
            .insert(ExpectedCsrf(s.csrf_token().to_owned()));
    }
    parts.extensions.insert(resolved.clone());
    Ok(resolved)
}

/// Whether cookies must be `Secure`.
pub(crate) fn secure_cookies(platform: &Platform) -> bool {
    platform.config().secure_cookies
}

/// The `Set-Cookie` value carrying `token`.
pub(crate) fn set_cookie(base: &str, token: &str, secure: bool, max_age_secs: i64) -> HeaderValue {
    let path = if base.is_empty() { "/" } else { base };
    let mut v = format!(
        "{SESSION_COOKIE}={token}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}"
    );
    if secure {
        v.push_str("; Secure");
    }
    HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(base: &str, secure: bool) -> HeaderValue {
    let path = if base.is_empty() { "/" } else { base };
    let mut v = format!("{SESSION_COOKIE}=; Path={path}; HttpOnly; SameSite=Lax; Max-Age=0");
    if secure {
        v.push_str("; Secure");
    }
    HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Appends a `Set-Cookie` header.
pub(crate) fn append_cookie(res: &mut axum::response::Response, value: HeaderValue) {
    if !value.is_empty() {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Whether a form's `_csrf` matches the request's session.
pub(crate) fn csrf_ok(expected: Option<&ExpectedCsrf>, given: Option<&str>) -> bool {
    match (expected, given) {
        (Some(e), Some(g)) => platform_core::crypto::constant_time_eq(e.0.as_bytes(), g.as_bytes()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_locked_down() {
        let v = set_cookie("/admin", "tok", true, 3600);
        let s = v.to_str().unwrap();
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Lax") && s.contains("Secure"));
        assert!(s.contains("Path=/admin"));
        assert!(
            clear_cookie("/admin", false)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn csrf() {
        let e = ExpectedCsrf("abc".into());
        assert!(csrf_ok(Some(&e), Some("abc")));
        assert!(!csrf_ok(Some(&e), Some("abd")));
        assert!(!csrf_ok(Some(&e), None));
        assert!(!csrf_ok(None, Some("abc")));
    }
}
