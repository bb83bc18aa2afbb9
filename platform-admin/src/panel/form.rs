//! Form bodies (`application/x-www-form-urlencoded`), read with the panel's
//! limits and errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};

use super::error::PanelError;

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space);
/// `None` when a percent escape or the UTF-8 is broken.
pub(crate) fn parse_urlencoded(input: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in input.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        out.push((decode(k)?, decode(v)?));
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one component (`+` is a space).
pub(crate) fn decode(s: &[u8]) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hi = hex(*s.get(i + 1)?)?;
                let lo = hex(*s.get(i + 2)?)?;
                bytes.push(hi << 4 | lo);
                i += 2;
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).ok()
}

/// A posted form as `(name, value)` pairs, in order. The body must be
/// `application/x-www-form-urlencoded` (else 415) and within the panel's
/// limit (else 413).
#[derive(Debug, Clone, Default)]
pub(crate) struct FormData(pub(crate) Vec<(String, String)>);

impl FormData {
    /// The last value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of `name`, in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = PanelError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim())
            .is_some_and(|v| v.eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PanelError::UnsupportedMediaType);
        }
        let expected = req
            .extensions()
            .get::<super::session::ExpectedCsrf>()
            .cloned();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                PanelError::PayloadTooLarge
            } else {
                PanelError::BadRequest("the form could not be read".into())
            }
        })?;
        let form = parse_urlencoded(&bytes)
            .map(FormData)
            .ok_or_else(|| PanelError::BadRequest("the form is malformed".into()))?;
        // Every form is checked against the session's CSRF token before any
        // handler sees it; no session, no token or another token: refused.
        if !super::session::csrf_ok(expected.as_ref(), form.get("_csrf")) {
            return Err(PanelError::Csrf);
        }
        Ok(form)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let f = parse_urlencoded(b"a=1&b=x+y%21&a=2&empty=&flag").unwrap();
        assert_eq!(
            f,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y!".into()),
                ("a".into(), "2".into()),
                ("empty".into(), String::new()),
                ("flag".into(), String::new()),
            ]
        );
        assert!(parse_urlencoded(b"a=%zz").is_none());
        assert!(parse_urlencoded(b"a=%ff").is_none());
        let d = FormData(f);
        assert_eq!(d.get("a"), Some("2"));
        assert_eq!(d.all("a").collect::<Vec<_>>(), vec!["1", "2"]);
    }
}
