//! Registration (off unless
//! [`platform_core::auth::AuthConfig::registration`]).

use axum::http::StatusCode;
use axum::response::Response;
use platform_core::Error;

use crate::panel::error::PanelError;
use crate::panel::form::FormData;

use super::verification::send_verification;
use super::visitor::Visitor;
use super::{MAX_INPUT, cut, field_errors, password, throttled_secs};

fn register_data(v: &Visitor) -> serde_json::Value {
    serde_json::json!({
        "action": format!("{}/register", v.base()),
        "login": format!("{}/login", v.base()),
        "name": "",
        "email": "",
        "errors": {},
    })
}

/// `GET /register` (404 unless registration is on).
pub(crate) async fn register_form(mut v: Visitor) -> Result<Response, PanelError> {
    if !v.platform.auth().config().registration {
        return Err(PanelError::NotFound);
    }
    v.ensure_session().await?;
    let data = register_data(&v);
    v.render(
        StatusCode::OK,
        "auth/register.html",
        "Create an account",
        &data,
    )
}

/// `POST /register`
pub(crate) async fn register(mut v: Visitor, form: FormData) -> Result<Response, PanelError> {
    if !v.platform.auth().config().registration {
        return Err(PanelError::NotFound);
    }
    let name = cut(form.get("name"), 255);
    let email = cut(form.get("email"), MAX_INPUT);
    let pw = password(&form, "password");
    let mut data = register_data(&v);
    data["name"] = name.clone().into();
    data["email"] = email.clone().into();
    if pw != password(&form, "password_confirmation") {
        data["errors"]["password_confirmation"] = "The passwords do not match.".into();
        return v.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "auth/register.html",
            "Create an account",
            &data,
        );
    }
    let auth = v.platform.auth().clone();
    let input = platform_core::access::NewUser {
        email,
        name,
        password: pw,
    };
    match auth.register(&v.ctx, input).await {
        Ok(user) => {
            send_verification(&v.platform, v.base(), &user);
            let ctx = v.ctx.clone();
            let s = v.posted_session()?;
            let token = auth.sessions().login(&ctx, s, user.id).await?;
            v.set_cookie = Some(v.cookie_for(&token));
            Ok(v.redirect(&format!("{}/two-factor/setup", v.base())))
        }
        Err(e @ Error::Validation(_)) => {
            if let Some(secs) = throttled_secs(&e) {
                return Ok(v.throttled("auth/register.html", data, secs));
            }
            data["errors"] = field_errors(&e).into();
            v.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                "auth/register.html",
                "Create an account",
                &data,
            )
        }
        Err(e) => Err(e.into()),
    }
}
