//! Password reset by e-mailed link.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use platform_core::Error;
use platform_core::auth::RESET_INVALID_MESSAGE;
use platform_core::mail::Mail;

use crate::panel::error::PanelError;
use crate::panel::flash::Flash;
use crate::panel::form::FormData;
use crate::panel::format::encode_component;

use super::visitor::Visitor;
use super::{
    MAX_INPUT, address_throttled, app_url, cut, field_errors, password, send_later, throttled_secs,
};

/// `GET /forgot-password`
pub(crate) async fn forgot_form(mut v: Visitor) -> Result<Response, PanelError> {
    v.ensure_session().await?;
    let data = serde_json::json!({
        "action": format!("{}/forgot-password", v.base()),
        "login": format!("{}/login", v.base()),
        "email": "",
    });
    v.render(
        StatusCode::OK,
        "auth/forgot_password.html",
        "Forgot password",
        &data,
    )
}

/// The answer to every reset request, known address or not.
pub(crate) const RESET_SENT_MESSAGE: &str =
    "If an account with that address exists, a link to reset its password is on its way.";

/// `POST /forgot-password`
pub(crate) async fn forgot(v: Visitor, form: FormData) -> Result<Response, PanelError> {
    let email = cut(form.get("email"), MAX_INPUT);
    let mut data = serde_json::json!({
        "action": format!("{}/forgot-password", v.base()),
        "login": format!("{}/login", v.base()),
        "email": email,
    });
    match v
        .platform
        .auth()
        .request_password_reset(&v.ctx, &email)
        .await
    {
        Ok(Some(t)) => {
            let link = format!(
                "{}{}/reset-password/{}",
                app_url(&v.platform),
                v.base(),
                encode_component(&t.token)
            );
            let minutes = v.platform.auth().config().password_reset_ttl.as_secs() / 60;
            let text = format!(
                "Hello {},\n\nSomeone (hopefully you) asked to reset the password of your account.\n\
                 Open this link to choose a new one; it works once, for {minutes} minutes:\n\n{link}\n\n\
                 If you did not ask for it, ignore this mail: your password stays as it is.\n",
                t.user.name
            );
            send_later(
                &v.platform,
                Mail::new(t.user.email, "Reset your password", text),
            );
        }
        Ok(None) => {}
        Err(e) => {
            if let Some(secs) = throttled_secs(&e) {
                return Ok(v.throttled("auth/forgot_password.html", data, secs));
            }
            if !matches!(e, Error::Validation(_)) {
                return Err(e.into());
            }
        }
    }
    data["sent"] = RESET_SENT_MESSAGE.into();
    data["email"] = "".into();
    v.render(
        StatusCode::OK,
        "auth/forgot_password.html",
        "Forgot password",
        &data,
    )
}

fn reset_data(v: &Visitor, token: &str) -> serde_json::Value {
    serde_json::json!({
        "action": format!("{}/reset-password/{}", v.base(), encode_component(token)),
        "forgot": format!("{}/forgot-password", v.base()),
        "errors": {},
    })
}

/// `GET /reset-password/{token}`
pub(crate) async fn reset_form(
    mut v: Visitor,
    Path(token): Path<String>,
) -> Result<Response, PanelError> {
    v.ensure_session().await?;
    let data = reset_data(&v, &token);
    v.render(
        StatusCode::OK,
        "auth/reset_password.html",
        "Reset password",
        &data,
    )
}

/// `POST /reset-password/{token}`
pub(crate) async fn reset(
    v: Visitor,
    Path(token): Path<String>,
    form: FormData,
) -> Result<Response, PanelError> {
    let pw = password(&form, "password");
    let mut data = reset_data(&v, &token);
    if let Some(secs) = address_throttled(&v).await {
        return Ok(v.throttled("auth/reset_password.html", data, secs));
    }
    if pw != password(&form, "password_confirmation") {
        data["errors"]["password_confirmation"] = "The passwords do not match.".into();
        return v.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "auth/reset_password.html",
            "Reset password",
            &data,
        );
    }
    match v.platform.auth().reset_password(&v.ctx, &token, &pw).await {
        Ok(_) => Ok(v.redirect_with(
            &format!("{}/login", v.base()),
            Flash::success("Your password has been reset. Sign in with the new one."),
        )),
        Err(e @ Error::Validation(_)) => {
            let mut errors = field_errors(&e);
            if errors.contains_key("token") {
                errors.insert("token".into(), RESET_INVALID_MESSAGE.into());
            }
            data["errors"] = errors.into();
            v.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                "auth/reset_password.html",
                "Reset password",
                &data,
            )
        }
        Err(e) => Err(e.into()),
    }
}
