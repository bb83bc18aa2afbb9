//! Webhook signatures: the platform's own (`Platform-Signature:
//! t=<unix>,v1=<hex>`, an HMAC-SHA256 over `"{t}.{body}"`, so the
//! timestamp cannot be altered), Stripe's (`Stripe-Signature`, the same
//! construction) and GitHub's (`X-Hub-Signature-256: sha256=<hex>`, over
//! the body alone, no timestamp).
//!
//! ```
//! use platform_webhooks::signature::{Scheme, sign, verify};
//!
//! let body = br#"{"id":"01","type":"order.shipped"}"#;
//! let header = sign("whsec_test", 1_700_000_000, body);
//! assert!(header.starts_with("t=1700000000,v1="));
//! // The receiver: at most 300 s away from its clock.
//! let ok = verify(Scheme::Platform, "whsec_test", &header, body, 1_700_000_100, 300);
//! assert!(ok.is_ok());
//! let stale = verify(Scheme::Platform, "whsec_test", &header, body, 1_700_001_000, 300);
//! assert!(stale.is_err());
//! ```
//!
//! Comparisons are constant-time.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the platform's signature.
pub const SIGNATURE_HEADER: &str = "Platform-Signature";
/// The header carrying the event id (the receiver's key against replays).
pub const ID_HEADER: &str = "Platform-Webhook-Id";

/// A signature scheme of incoming calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `Platform-Signature: t=<unix>,v1=<hex>` over `"{t}.{body}"`; the
    /// event id in `Platform-Webhook-Id`.
    Platform,
    /// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=..]` over `"{t}.{body}"`;
    /// the event id is the body's `id`.
    Stripe,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body; the event id in
    /// `X-GitHub-Delivery`. GitHub signs no timestamp: replays are caught
    /// by the delivery id alone.
    GitHub,
}

impl Scheme {
    /// The header holding the signature.
    pub fn header(self) -> &'static str {
        match self {
            Self::Platform => SIGNATURE_HEADER,
            Self::Stripe => "Stripe-Signature",
            Self::GitHub => "X-Hub-Signature-256",
        }
    }
    /// Its name (`platform`, `stripe`, `github`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Stripe => "stripe",
            Self::GitHub => "github",
        }
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is missing or does not parse.
    Malformed,
    /// The timestamp is further from now than the tolerance.
    Stale,
    /// No signature in the header matches.
    Mismatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "the signature header is missing or malformed",
            Self::Stale => "the signature's timestamp is outside the tolerance window",
            Self::Mismatch => "the signature does not match",
        })
    }
}

impl std::error::Error for SignatureError {}

fn mac(secret: &str) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length")
}

/// The hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn digest(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// The `Platform-Signature` header value for `body` sent at `timestamp`
/// (seconds since the epoch): `t=<timestamp>,v1=<hex>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", digest(secret, timestamp, body))
}

/// GitHub's header value for `body`: `sha256=<hex>`.
pub fn sign_github(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

fn eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checks `header` (the value of [`Scheme::header`]) against `body` under
/// `secret`; for the timestamped schemes the timestamp must be within
/// `tolerance_secs` of `now` (seconds since the epoch) either way.
pub fn verify(
    scheme: Scheme,
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    match scheme {
        Scheme::GitHub => {
            let given = header
                .trim()
                .strip_prefix("sha256=")
                .ok_or(SignatureError::Malformed)?;
            if eq(&given.to_ascii_lowercase(), &sign_github(secret, body)[7..]) {
                Ok(())
            } else {
                Err(SignatureError::Mismatch)
            }
        }
        Scheme::Platform | Scheme::Stripe => {
            let mut t = None;
            let mut sigs = Vec::new();
            for part in header.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => t = v.parse::<i64>().ok(),
                    Some(("v1", v)) => sigs.push(v.to_ascii_lowercase()),
                    _ => {}
                }
            }
            let t = t.ok_or(SignatureError::Malformed)?;
            if sigs.is_empty() {
                return Err(SignatureError::Malformed);
            }
            if (now - t).abs() > tolerance_secs {
                return Err(SignatureError::Stale);
            }
            let want = digest(secret, t, body);
            // Every candidate is compared (a rotated secret sends two).
            let mut ok = false;
            for s in &sigs {
                ok |= eq(s, &want);
            }
            if ok {
                Ok(())
            } else {
                Err(SignatureError::Mismatch)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_from_python() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"k",b"1.{}",hashlib.sha256).hexdigest())'
        assert_eq!(
            digest("k", 1, b"{}"),
            "3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
        );
    }

    #[test]
    fn tampering_and_malformed_headers_are_refused() {
        let h = sign("s", 100, b"body");
        assert_eq!(verify(Scheme::Platform, "s", &h, b"body", 100, 5), Ok(()));
        assert_eq!(
            verify(Scheme::Platform, "s", &h, b"bodx", 100, 5),
            Err(SignatureError::Mismatch)
        );
        let moved = h.replace("t=100", "t=101");
        assert_eq!(
            verify(Scheme::Platform, "s", &moved, b"body", 100, 5),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Scheme::Stripe, "s", "garbage", b"body", 100, 5),
            Err(SignatureError::Malformed)
        );
        let g = sign_github("s", b"body");
        assert_eq!(verify(Scheme::GitHub, "s", &g, b"body", 0, 0), Ok(()));
        assert_eq!(
            verify(Scheme::GitHub, "t", &g, b"body", 0, 0),
            Err(SignatureError::Mismatch)
        );
    }
}
