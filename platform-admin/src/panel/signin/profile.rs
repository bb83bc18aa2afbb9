//! The profile page: name, e-mail, password, verification mail and
//! recovery codes.

use axum::http::StatusCode;
use axum::response::Response;
use platform_core::Error;
use platform_core::auth::{PasswordChange, ProfileUpdate, Session};
use serde::Serialize;

use crate::panel::error::PanelError;
use crate::panel::flash::Flash;
use crate::panel::form::FormData;
use crate::panel::format::encode_component;
use crate::panel::render::Panel;
use crate::panel::session;

use super::verification::send_verification;
use super::{cut, field_errors, password, session_cookie, throttled_secs};

#[derive(Serialize, Default)]
struct ProfileData {
    name: String,
    email: String,
    verified: bool,
    recovery_codes_left: usize,
    errors: serde_json::Map<String, serde_json::Value>,
    password_errors: serde_json::Map<String, serde_json::Value>,
    base: String,
}

async fn profile_data(p: &Panel) -> Result<ProfileData, PanelError> {
    let u = &p.auth.user;
    Ok(ProfileData {
        name: u.name.clone(),
        email: u.email.clone(),
        verified: u.email_verified_at.is_some(),
        recovery_codes_left: p
            .platform
            .auth()
            .two_factor()
            .recovery_codes_left(u.id)
            .await?,
        base: p.base().to_owned(),
        ..ProfileData::default()
    })
}

/// `GET /profile`
pub(crate) async fn profile(p: Panel) -> Result<Response, PanelError> {
    let data = profile_data(&p).await?;
    p.render("auth/profile.html", "Profile", &data).await
}

/// `POST /profile`: name and e-mail address.
pub(crate) async fn update_profile(p: Panel, form: FormData) -> Result<Response, PanelError> {
    let update = ProfileUpdate {
        name: cut(form.get("name"), 1000),
        email: cut(form.get("email"), 1000),
    };
    let changed_email = !update.email.eq_ignore_ascii_case(&p.auth.user.email);
    match p
        .platform
        .auth()
        .update_profile(p.ctx(), p.auth.user.id, update.clone())
        .await
    {
        Ok(user) => {
            if changed_email {
                send_verification(&p.platform, p.base(), &user);
            }
            Ok(p.redirect_with(
                &format!("{}/profile", p.base()),
                Flash::success("Your profile has been saved."),
            ))
        }
        Err(e @ Error::Validation(_)) => {
            let mut data = profile_data(&p).await?;
            data.errors = field_errors(&e);
            data.name = update.name;
            data.email = update.email;
            p.render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "auth/profile.html",
                "Profile",
                &data,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /profile/password`
pub(crate) async fn change_password(p: Panel, form: FormData) -> Result<Response, PanelError> {
    let input = PasswordChange {
        current_password: password(&form, "current_password"),
        password: password(&form, "password"),
    };
    let mut data = profile_data(&p).await?;
    if input.password != password(&form, "password_confirmation") {
        data.password_errors.insert(
            "password_confirmation".into(),
            "The passwords do not match.".into(),
        );
        return p
            .render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "auth/profile.html",
                "Profile",
                &data,
            )
            .await;
    }
    let keep = p.session.as_ref().and_then(|s| s.token.clone());
    match p
        .platform
        .auth()
        .change_password(p.ctx(), p.auth.user.id, input, keep.as_deref())
        .await
    {
        Ok(rotated) => {
            let mut res = p.redirect_with(
                &format!("{}/profile", p.base()),
                Flash::success(
                    "Your password has been changed; your other sessions were signed out.",
                ),
            );
            // This session was rotated with the change: its new id.
            if let Some(token) = rotated {
                session::append_cookie(&mut res, session_cookie(&p.platform, p.base(), &token));
            }
            Ok(res)
        }
        Err(e @ Error::Validation(_)) => {
            let status = if throttled_secs(&e).is_some() {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            data.password_errors = field_errors(&e);
            p.render_status(status, "auth/profile.html", "Profile", &data)
                .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /profile/verification`: mails a new verification link.
pub(crate) async fn resend_verification(p: Panel, _form: FormData) -> Result<Response, PanelError> {
    send_verification(&p.platform, p.base(), &p.auth.user);
    Ok(p.redirect_with(
        &format!("{}/profile", p.base()),
        Flash::success(format!(
            "A verification link is on its way to {}.",
            p.auth.user.email
        )),
    ))
}

/// `POST /profile/recovery-codes`: fresh recovery codes (needs a recent
/// password confirmation).
pub(crate) async fn regenerate_codes(p: Panel, _form: FormData) -> Result<Response, PanelError> {
    let confirmed = p
        .session
        .as_ref()
        .and_then(|s| s.session.as_ref())
        .is_none_or(Session::password_recently_confirmed);
    if !confirmed {
        let back = format!("{}/profile", p.base());
        return Ok(p.redirect(&format!(
            "{}/confirm-password?next={}",
            p.base(),
            encode_component(&back)
        )));
    }
    let codes = p
        .platform
        .auth()
        .two_factor()
        .regenerate_recovery_codes(p.ctx(), p.auth.user.id)
        .await?;
    let data = serde_json::json!({
        "codes": codes.codes(),
        "next": format!("{}/profile", p.base()),
        "enabled": false,
    });
    p.render("auth/recovery_codes.html", "Recovery codes", &data)
        .await
}
