//! Sign-in and sign-out.

use axum::http::StatusCode;
use axum::response::Response;
use platform_core::auth::{LOGIN_FAILED_MESSAGE, LoginOutcome};

use crate::panel::error::PanelError;
use crate::panel::form::FormData;
use crate::panel::render::redirect;
use crate::panel::session;

use super::visitor::Visitor;
use super::{MAX_INPUT, cut, password, query_param};

/// `GET /login`
pub(crate) async fn login_form(
    mut v: Visitor,
    query: axum::extract::RawQuery,
) -> Result<Response, PanelError> {
    let next = query_param(query.0.as_deref(), "next");
    if v.fully_signed_in() {
        let to = v.safe_next(next.as_deref()).unwrap_or_else(|| v.home());
        return Ok(v.redirect(&to));
    }
    v.ensure_session().await?;
    let next = v.safe_next(next.as_deref());
    let data = serde_json::json!({
        "action": format!("{}/login", v.base()),
        "next": next,
        "email": "",
        "forgot": format!("{}/forgot-password", v.base()),
        "register": v.platform.auth().config().registration.then(|| format!("{}/register", v.base())),
    });
    v.render(StatusCode::OK, "auth/login.html", "Sign in", &data)
}

/// `POST /login`
pub(crate) async fn login(mut v: Visitor, form: FormData) -> Result<Response, PanelError> {
    let email = cut(form.get("email"), MAX_INPUT);
    let pw = password(&form, "password");
    let next = v.safe_next(form.get("next"));
    let data = serde_json::json!({
        "action": format!("{}/login", v.base()),
        "next": next,
        "email": email,
        "forgot": format!("{}/forgot-password", v.base()),
        "register": v.platform.auth().config().registration.then(|| format!("{}/register", v.base())),
    });
    let auth = v.platform.auth().clone();
    match auth.attempt_login(&v.ctx, &email, &pw).await? {
        LoginOutcome::Success(user) => {
            let ctx = v.ctx.clone();
            let s = v.posted_session()?;
            s.clear_pending_login();
            if let Some(n) = next {
                s.set_intended(n);
            }
            let token = auth.sessions().login(&ctx, s, user.id).await?;
            v.set_cookie = Some(v.cookie_for(&token));
            if user.password_change_required {
                // A generated password: the user's own first.
                return Ok(v.redirect(&format!("{}/change-password", v.base())));
            }
            // Two-factor authentication is mandatory for the panel.
            Ok(v.redirect(&format!("{}/two-factor/setup", v.base())))
        }
        LoginOutcome::TwoFactorRequired(user) => {
            // The password is a privilege: the session gets a new id (and
            // CSRF token) now, not only after the second factor.
            let s = v.posted_session()?;
            s.clear_pending_login();
            if let Some(n) = next {
                s.set_intended(n);
            }
            let token = auth.sessions().begin_two_factor(s, user.id).await?;
            v.set_cookie = Some(v.cookie_for(&token));
            Ok(v.redirect(&format!("{}/two-factor-challenge", v.base())))
        }
        LoginOutcome::Failed => {
            let mut data = data;
            data["error"] = LOGIN_FAILED_MESSAGE.into();
            v.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                "auth/login.html",
                "Sign in",
                &data,
            )
        }
        LoginOutcome::Throttled { retry_after } => {
            Ok(v.throttled("auth/login.html", data, retry_after.as_secs()))
        }
    }
}

/// `POST /logout`
pub(crate) async fn logout(v: Visitor, _form: FormData) -> Result<Response, PanelError> {
    if let Some(token) = &v.token {
        v.platform.auth().sessions().logout(&v.ctx, token).await?;
    }
    let mut res = redirect(&format!("{}/login", v.base()));
    session::append_cookie(
        &mut res,
        session::clear_cookie(v.base(), session::secure_cookies(&v.platform)),
    );
    Ok(res)
}
