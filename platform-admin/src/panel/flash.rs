//! Flash messages: one message carried from a `POST` to the page its
//! redirect lands on, in a short-lived cookie (the session layer may take
//! this over; these two functions are where it plugs in).

use axum::http::HeaderValue;
use serde::Serialize;

use super::format::encode_component;

/// The cookie's name.
pub(crate) const COOKIE: &str = "platform_flash";

/// A message for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Flash {
    /// `success`, `error` or `info`.
    pub(crate) kind: &'static str,
    /// The text (escaped when shown).
    pub(crate) message: String,
}

impl Flash {
    /// A success message.
    pub(crate) fn success(message: impl Into<String>) -> Self {
        Self {
            kind: "success",
            message: message.into(),
        }
    }
    /// An error message.
    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self {
            kind: "error",
            message: message.into(),
        }
    }
}

/// The flash of a request's cookies.
pub(crate) fn read(cookies: &[(String, String)]) -> Option<Flash> {
    let raw = cookies.iter().rev().find(|(k, _)| k == COOKIE)?.1.as_str();
    let (kind, text) = raw.split_once('.')?;
    let kind = match kind {
        "s" => "success",
        "e" => "error",
        _ => "info",
    };
    let message = super::form::decode(text.as_bytes())?;
    let message: String = message.chars().take(500).collect();
    (!message.is_empty()).then_some(Flash { kind, message })
}

/// The `Set-Cookie` value carrying `flash`.
pub(crate) fn set_cookie(
    base: &str,
    flash: &Flash,
) -> Result<HeaderValue, axum::http::header::InvalidHeaderValue> {
    let kind = match flash.kind {
        "success" => "s",
        "error" => "e",
        _ => "i",
    };
    let text: String = flash.message.chars().take(500).collect();
    HeaderValue::try_from(format!(
        "{COOKIE}={kind}.{}; Path={}; Max-Age=120; HttpOnly; SameSite=Lax",
        encode_component(&text),
        cookie_path(base)
    ))
}

/// The `Set-Cookie` value removing the flash.
pub(crate) fn clear_cookie(
    base: &str,
) -> Result<HeaderValue, axum::http::header::InvalidHeaderValue> {
    HeaderValue::try_from(format!(
        "{COOKIE}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax",
        cookie_path(base)
    ))
}

/// The cookie path of the panel (`/` when mounted at the root).
pub(crate) fn cookie_path(base: &str) -> &str {
    if base.is_empty() { "/" } else { base }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = Flash::error("Deleted <b>3</b> invoices; ok?");
        let v = set_cookie("/admin", &f).unwrap();
        let s = v.to_str().unwrap();
        let raw = s.split(';').next().unwrap().split_once('=').unwrap().1;
        assert_eq!(read(&[(COOKIE.into(), raw.into())]), Some(f));
        assert!(read(&[(COOKIE.into(), "garbage".into())]).is_none());
    }
}
