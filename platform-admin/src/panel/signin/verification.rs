//! E-mail verification by signed link.

use axum::http::StatusCode;
use axum::response::Response;
use platform_core::auth::VERIFY_INVALID_MESSAGE;
use platform_core::mail::Mail;
use platform_core::{Error, Platform};

use crate::panel::error::PanelError;
use crate::panel::format::encode_component;

use super::visitor::Visitor;
use super::{MAX_INPUT, app_url, query_param, send_later};

/// `GET /verify-email?user=&email=&expires=&signature=`: the signed link
/// of the verification mail. (The one `GET` that changes state: it only
/// marks an address verified, idempotently, and only with a valid
/// signature.)
pub(crate) async fn verify_email(
    v: Visitor,
    query: axum::extract::RawQuery,
) -> Result<Response, PanelError> {
    let q = query.0.as_deref();
    let user_id = query_param(q, "user").and_then(|u| u.parse::<i64>().ok());
    let expires = query_param(q, "expires").and_then(|u| u.parse::<i64>().ok());
    let email = query_param(q, "email").unwrap_or_default();
    let signature = query_param(q, "signature").unwrap_or_default();
    let result = match (user_id, expires) {
        (Some(u), Some(x)) if email.len() <= MAX_INPUT && signature.len() <= 256 => {
            v.platform
                .auth()
                .verify_email(&v.ctx, u, &email, x, &signature)
                .await
        }
        _ => Err(Error::invalid(
            "signature",
            "invalid",
            VERIFY_INVALID_MESSAGE,
        )),
    };
    let (status, message, ok) = match result {
        Ok(()) => (StatusCode::OK, "Your e-mail address is verified.", true),
        Err(Error::Validation(_)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            VERIFY_INVALID_MESSAGE,
            false,
        ),
        Err(e) => return Err(e.into()),
    };
    let data = serde_json::json!({
        "message": message,
        "ok": ok,
        "home": v.home(),
    });
    v.render(
        status,
        "auth/verify_email.html",
        "E-mail verification",
        &data,
    )
}

/// Mails a verification link for the user's current address.
pub(super) fn send_verification(
    platform: &Platform,
    base: &str,
    user: &platform_core::access::User,
) {
    let link = platform.auth().email_verification(user);
    let url = format!(
        "{}{base}/verify-email?user={}&email={}&expires={}&signature={}",
        app_url(platform),
        link.user_id,
        encode_component(&link.email),
        link.expires,
        link.signature
    );
    let text = format!(
        "Hello {},\n\nOpen this link to confirm that {} is your address:\n\n{url}\n",
        user.name, user.email
    );
    send_later(
        platform,
        Mail::new(user.email.clone(), "Verify your e-mail address", text),
    );
}
