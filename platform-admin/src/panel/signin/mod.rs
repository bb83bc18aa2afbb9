//! The sign-in pages (what Laravel Fortify's routes do): sign-in and
//! sign-out, the two-factor challenge and the mandatory two-factor set-up,
//! password reset by e-mailed link, e-mail verification, password
//! confirmation before sensitive pages, registration (off unless
//! [`platform_core::auth::AuthConfig::registration`]), the profile page
//! (name, e-mail, password, recovery codes), and the change a user whose
//! password was generated makes before anything else (`/change-password`).
//!
//! The checks themselves (throttling, hashing, replay protection, session
//! rotation, audit entries) live in [`platform_core::auth`]; these handlers
//! turn them into pages. Every answer that could tell whether an account
//! exists is the same for known and unknown addresses.

mod login;
mod password;
mod profile;
mod register;
mod reset;
mod two_factor;
mod verification;
mod visitor;

use axum::http::HeaderValue;
use axum::response::Response;
use platform_core::mail::Mail;
use platform_core::{Error, Platform};

use super::error::PanelError;
use super::form::FormData;
use super::render::Panel;
use super::session;

pub(crate) use login::{login, login_form, logout};
pub(crate) use password::{confirm, confirm_form, required_change, required_change_form};
pub(crate) use profile::{
    change_password, profile, regenerate_codes, resend_verification, update_profile,
};
pub(crate) use register::{register, register_form};
pub(crate) use reset::{forgot, forgot_form, reset, reset_form};
pub(crate) use two_factor::{challenge, challenge_form, setup, setup_form};
pub(crate) use verification::verify_email;
use visitor::Visitor;

/// The longest e-mail address or name read from a sign-in form; longer
/// input is cut (the core rejects it anyway).
pub(super) const MAX_INPUT: usize = 320;
/// The longest password read from a form (the core's limit is lower).
pub(super) const MAX_PASSWORD_INPUT: usize = 4096;

/// The `Set-Cookie` value carrying a (new) session token.
pub(crate) fn session_cookie(platform: &Platform, base: &str, token: &str) -> HeaderValue {
    let lifetime = platform.auth().config().session_lifetime.as_secs();
    session::set_cookie(
        base,
        token,
        session::secure_cookies(platform),
        i64::try_from(lifetime).unwrap_or(i64::MAX),
    )
}

/// Rotates the session of a signed-in panel request after a change of its
/// privileges (the password changed, its user's roles or permissions
/// changed) and adds the new cookie to `res`. A request without a session
/// of its own (a layer signed it in) has nothing to rotate.
pub(crate) async fn rotate_panel_session(p: &Panel, res: &mut Response) -> Result<(), PanelError> {
    let Some(mut s) = p.session.as_ref().and_then(|r| r.session.clone()) else {
        return Ok(());
    };
    let token = p.platform.auth().sessions().rotate(&mut s).await?;
    session::append_cookie(res, session_cookie(&p.platform, p.base(), &token));
    Ok(())
}

/// Counts a credential check against the client address's ceiling (the
/// core counts the account's); the seconds to wait when over it.
pub(super) async fn address_throttled(v: &Visitor) -> Option<u64> {
    v.platform
        .auth()
        .throttle()
        .address(v.ctx.ip())
        .await
        .err()
        .map(|t| t.seconds())
}

/// The seconds of a `throttled` validation error, if `e` is one.
pub(super) fn throttled_secs(e: &Error) -> Option<u64> {
    let Error::Validation(errors) = e else {
        return None;
    };
    errors.iter().find(|f| f.code == "throttled").map(|f| {
        f.message
            .split_whitespace()
            .find_map(|w| w.parse::<u64>().ok())
            .unwrap_or(60)
    })
}

/// The field messages of a validation error, by field.
pub(super) fn field_errors(e: &Error) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    if let Error::Validation(errors) = e {
        for f in errors.iter() {
            out.entry(f.field.clone())
                .or_insert_with(|| f.message.clone().into());
        }
    }
    out
}

pub(super) fn cut(s: Option<&str>, max: usize) -> String {
    s.unwrap_or_default().trim().chars().take(max).collect()
}

pub(super) fn password(form: &FormData, name: &str) -> String {
    form.get(name)
        .unwrap_or_default()
        .chars()
        .take(MAX_PASSWORD_INPUT)
        .collect()
}

/// The site's public address for links in e-mails (see
/// [`Config::public_url`](platform_core::config::Config::public_url)).
pub(super) fn app_url(platform: &Platform) -> String {
    platform.config().public_url.clone()
}

/// Sends `mail` in the background: the answer must not wait on (or tell
/// about) the mail server, and must take the same time whether or not the
/// account exists. Failures are logged without the body.
pub(super) fn send_later(platform: &Platform, mail: Mail) {
    let mailer = platform.mailer().clone();
    tokio::spawn(async move {
        if let Err(e) = mailer.send(&mail).await {
            tracing::warn!(error = %e, subject = %mail.subject, "a mail could not be sent");
        }
    });
}

/// One parameter of a raw query string.
pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    crate::panel::form::parse_urlencoded(query?.as_bytes())?
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_seconds_are_read() {
        let e = Error::invalid(
            "code",
            "throttled",
            "too many attempts; try again in 42 seconds",
        );
        assert_eq!(throttled_secs(&e), Some(42));
        assert_eq!(
            throttled_secs(&Error::invalid("code", "invalid", "wrong")),
            None
        );
    }

    #[test]
    fn query_params() {
        assert_eq!(
            query_param(Some("a=1&next=%2Fadmin%2Fx"), "next").as_deref(),
            Some("/admin/x")
        );
        assert_eq!(query_param(None, "next"), None);
        assert_eq!(query_param(Some("next=%zz"), "next"), None);
    }
}
