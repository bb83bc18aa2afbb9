//! The change a user whose password was generated makes before anything
//! else (`/change-password`), and the password confirmation before
//! sensitive pages (`/confirm-password`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform_core::Error;
use platform_core::auth::{PasswordChange, Session};

use crate::panel::auth::LoginRedirect;
use crate::panel::error::PanelError;
use crate::panel::flash::Flash;
use crate::panel::form::FormData;

use super::two_factor::half_signed_in;
use super::visitor::{RequestPath, Visitor};
use super::{address_throttled, field_errors, password, query_param, throttled_secs};

/// Whether the session's user signed in with a generated password not yet
/// replaced ([`platform_core::access::User::password_change_required`]).
pub(super) fn must_change_password(v: &Visitor) -> bool {
    v.session
        .as_ref()
        .filter(|s| s.is_authenticated())
        .and_then(Session::user)
        .is_some_and(|u| u.password_change_required)
}

/// Where a session goes once its password is its user's own: the
/// two-factor set-up when the second factor is still missing, else home.
fn after_password(v: &Visitor) -> String {
    if v.fully_signed_in() {
        v.home()
    } else {
        format!("{}/two-factor/setup", v.base())
    }
}

fn change_data(v: &Visitor) -> serde_json::Value {
    serde_json::json!({
        "action": format!("{}/change-password", v.base()),
        "logout": format!("{}/logout", v.base()),
        "errors": {},
    })
}

/// `GET /change-password`: the page a user whose password was generated
/// sees after the password step of the sign-in, before anything else.
pub(crate) async fn required_change_form(
    v: Visitor,
    parts: RequestPath,
) -> Result<Response, PanelError> {
    if half_signed_in(&v).is_none() {
        return Ok(LoginRedirect::new(v.base(), &parts.0).into_response());
    }
    if !must_change_password(&v) {
        return Ok(v.redirect(&after_password(&v)));
    }
    v.render(
        StatusCode::OK,
        "auth/change_password.html",
        "Choose your own password",
        &change_data(&v),
    )
}

/// `POST /change-password`: the current (generated) password and a new
/// one, twice. The change clears the flag, ends the user's other sessions
/// and rotates this one.
pub(crate) async fn required_change(
    mut v: Visitor,
    parts: RequestPath,
    form: FormData,
) -> Result<Response, PanelError> {
    let Some(user_id) = half_signed_in(&v) else {
        return Ok(LoginRedirect::new(v.base(), &parts.0).into_response());
    };
    if !must_change_password(&v) {
        return Ok(v.redirect(&after_password(&v)));
    }
    let Some(ctx) = v.user_ctx(user_id).await? else {
        return Ok(LoginRedirect::new(v.base(), &parts.0).into_response());
    };
    let mut data = change_data(&v);
    let input = PasswordChange {
        current_password: password(&form, "current_password"),
        password: password(&form, "password"),
    };
    if input.password != password(&form, "password_confirmation") {
        data["errors"] =
            serde_json::json!({ "password_confirmation": "The passwords do not match." });
        return v.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "auth/change_password.html",
            "Choose your own password",
            &data,
        );
    }
    let keep = v.token.clone();
    match v
        .platform
        .auth()
        .change_password(&ctx, user_id, input, keep.as_deref())
        .await
    {
        Ok(rotated) => {
            if let Some(token) = rotated {
                v.set_cookie = Some(v.cookie_for(&token));
            }
            let to = after_password(&v);
            Ok(v.redirect_with(&to, Flash::success("Your password has been changed.")))
        }
        Err(e @ Error::Validation(_)) => {
            let status = if throttled_secs(&e).is_some() {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            data["errors"] = serde_json::Value::Object(field_errors(&e));
            v.render(
                status,
                "auth/change_password.html",
                "Choose your own password",
                &data,
            )
        }
        Err(e) => Err(e.into()),
    }
}
/// `GET /confirm-password?next=`
pub(crate) async fn confirm_form(
    v: Visitor,
    query: axum::extract::RawQuery,
    parts: RequestPath,
) -> Result<Response, PanelError> {
    if !v.fully_signed_in() {
        return Ok(LoginRedirect::new(v.base(), &parts.0).into_response());
    }
    let next = v.safe_next(query_param(query.0.as_deref(), "next").as_deref());
    let data = serde_json::json!({
        "action": format!("{}/confirm-password", v.base()),
        "next": next,
        "cancel": v.home(),
    });
    v.render(
        StatusCode::OK,
        "auth/confirm_password.html",
        "Confirm password",
        &data,
    )
}

/// `POST /confirm-password`
pub(crate) async fn confirm(
    mut v: Visitor,
    parts: RequestPath,
    form: FormData,
) -> Result<Response, PanelError> {
    if !v.fully_signed_in() {
        return Ok(LoginRedirect::new(v.base(), &parts.0).into_response());
    }
    let next = v.safe_next(form.get("next"));
    let pw = password(&form, "password");
    let auth = v.platform.auth().clone();
    let mut data = serde_json::json!({
        "action": format!("{}/confirm-password", v.base()),
        "next": next,
        "cancel": v.home(),
    });
    if let Some(secs) = address_throttled(&v).await {
        return Ok(v.throttled("auth/confirm_password.html", data, secs));
    }
    let s = v.posted_session()?;
    match auth.confirm_password(s, &pw).await {
        Ok(Some(token)) => {
            // Confirmed: a privilege, so the session id rotates.
            v.set_cookie = Some(v.cookie_for(&token));
            let to = next.unwrap_or_else(|| v.home());
            Ok(v.redirect(&to))
        }
        Ok(None) => {
            data["error"] = "The password is not correct.".into();
            v.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                "auth/confirm_password.html",
                "Confirm password",
                &data,
            )
        }
        Err(e) => match throttled_secs(&e) {
            Some(secs) => Ok(v.throttled("auth/confirm_password.html", data, secs)),
            None => Err(e.into()),
        },
    }
}
