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

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Serde;
use platform_core::auth::{
    LOGIN_FAILED_MESSAGE, LoginOutcome, PasswordChange, ProfileUpdate, RESET_INVALID_MESSAGE,
    Session, VERIFY_INVALID_MESSAGE,
};
use platform_core::context::{Actor, Context};
use platform_core::mail::Mail;
use platform_core::{Error, Platform};
use serde::Serialize;

use super::auth::{LoginRedirect, PanelAuth, is_relative_path, original_path_and_query};
use super::error::PanelError;
use super::flash::{self, Flash};
use super::form::FormData;
use super::format::encode_component;
use super::layout;
use super::render::{Panel, Shared, cookies, fill_context, redirect};
use super::session::{self, Resolved};

/// The longest e-mail address or name read from a sign-in form; longer
/// input is cut (the core rejects it anyway).
const MAX_INPUT: usize = 320;
/// The longest password read from a form (the core's limit is lower).
const MAX_PASSWORD_INPUT: usize = 4096;

/// A request to a public page (sign-in, reset, ...): the platform, the
/// panel's templates and the session of the cookie, if any.
pub(crate) struct Visitor {
    platform: Platform,
    shared: Arc<Shared>,
    token: Option<String>,
    session: Option<Session>,
    /// An anonymous context with the request's address, user agent, URL
    /// and request id (throttling and the audit trail use them).
    ctx: Context,
    theme: &'static str,
    flash: Option<Flash>,
    /// A new session cookie to send (a session started by this request).
    set_cookie: Option<HeaderValue>,
}

impl<S> FromRequestParts<S> for Visitor
where
    Platform: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let platform = Platform::from_ref(state);
        let Some(shared) = parts.extensions.get::<Arc<Shared>>().cloned() else {
            return Err(PanelError::Internal("the panel's state is missing".into()).into_response());
        };
        let Resolved { token, session } = session::resolve(parts, &platform)
            .await
            .map_err(|e| PanelError::Core(e).into_response())?;
        let jar = cookies(&parts.headers);
        let cookie = |name: &str| {
            jar.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let theme = layout::theme(cookie(super::prefs::THEME_COOKIE));
        let flash = flash::read(&jar);
        Ok(Self {
            ctx: fill_context(Context::new(Actor::Anonymous), parts),
            platform,
            shared,
            token,
            session,
            theme,
            flash,
            set_cookie: None,
        })
    }
}

impl Visitor {
    fn base(&self) -> &str {
        &self.shared.config.base_path
    }

    fn home(&self) -> String {
        layout::home(self.base())
    }

    /// The session, started (and its cookie queued) when there is none:
    /// forms need one for their CSRF token.
    async fn ensure_session(&mut self) -> Result<&mut Session, PanelError> {
        if self.session.is_none() {
            let (token, s) = self
                .platform
                .auth()
                .sessions()
                .start(self.ctx.ip(), self.ctx.user_agent())
                .await?;
            self.set_cookie = Some(self.cookie_for(&token));
            self.token = Some(token);
            self.session = Some(s);
        }
        Ok(self.session.as_mut().expect("just set"))
    }

    fn cookie_for(&self, token: &str) -> HeaderValue {
        session_cookie(&self.platform, self.base(), token)
    }

    /// The page the visitor asked for before signing in (taken from the
    /// session, which is saved without it).
    async fn take_intended(&mut self) -> Result<Option<String>, PanelError> {
        let intended = self.session.as_mut().and_then(Session::take_intended);
        if intended.is_some()
            && let Some(s) = &self.session
        {
            self.platform.auth().sessions().save(s).await?;
        }
        Ok(intended)
    }

    /// The session a form was posted with (the CSRF check guarantees one).
    fn posted_session(&mut self) -> Result<&mut Session, PanelError> {
        self.session.as_mut().ok_or(PanelError::Csrf)
    }

    /// Whether the session is signed in with every factor.
    fn fully_signed_in(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.is_authenticated() && s.two_factor_passed())
    }

    /// The context of the session's user (for calls that act as them).
    async fn user_ctx(&self, user_id: i64) -> Result<Option<Context>, PanelError> {
        let Some(auth) = PanelAuth::for_user(&self.platform, user_id, "").await? else {
            return Ok(None);
        };
        let mut ctx = auth.ctx;
        if let Some(ip) = self.ctx.ip() {
            ctx = ctx.with_ip(ip);
        }
        if let Some(ua) = self.ctx.user_agent() {
            ctx = ctx.with_user_agent(ua);
        }
        if let Some(url) = self.ctx.url() {
            ctx = ctx.with_url(url);
        }
        if let Some(id) = self.ctx.request_id() {
            ctx = ctx.with_request_id(id);
        }
        Ok(Some(ctx))
    }

    /// Renders a public page.
    fn render<T: Serialize>(
        &self,
        status: StatusCode,
        name: &str,
        title: &str,
        data: &T,
    ) -> Result<Response, PanelError> {
        let mut layout = layout::minimal(&self.shared, None, title);
        layout.csrf = self
            .session
            .as_ref()
            .map(|s| s.csrf_token().to_owned())
            .unwrap_or_default();
        layout.theme = self.theme;
        layout.flash = self.flash.clone();
        let ctx = minijinja::context! {
            layout => minijinja::Value::from(Serde(&layout)),
            ..minijinja::Value::from(Serde(data))
        };
        let html = self.shared.render(name, ctx).map_err(|e| {
            tracing::error!(template = name, error = %e, detail = %e.display_debug_info(), "panel template failed");
            PanelError::Internal(format!("template `{name}` failed"))
        })?;
        let mut res = (status, Html(html)).into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.flash.is_some()
            && let Ok(v) = flash::clear_cookie(self.base())
        {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(self.finish(res))
    }

    /// Adds the queued session cookie to `res`.
    fn finish(&self, mut res: Response) -> Response {
        if let Some(c) = &self.set_cookie {
            session::append_cookie(&mut res, c.clone());
        }
        res
    }

    fn redirect(&self, location: &str) -> Response {
        self.finish(redirect(location))
    }

    fn redirect_with(&self, location: &str, message: Flash) -> Response {
        let mut res = self.redirect(location);
        if let Ok(v) = flash::set_cookie(self.base(), &message) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    }

    /// `next` when it is a page of this panel (never another origin, never
    /// a sign-in page), else `None`.
    fn safe_next(&self, next: Option<&str>) -> Option<String> {
        let next = next?.trim();
        let base = self.base();
        let inside = next == layout::home(base)
            || next.starts_with(&format!("{base}/"))
            || (base.is_empty() && next.starts_with('/'));
        let rest = next.strip_prefix(base).unwrap_or(next);
        let auth_page = [
            "/login",
            "/logout",
            "/two-factor",
            "/forgot-password",
            "/reset-password",
            "/register",
            "/confirm-password",
            "/change-password",
            "/static/",
        ]
        .iter()
        .any(|p| rest.starts_with(p));
        (is_relative_path(next) && inside && !auth_page && next.len() <= 2048)
            .then(|| next.to_owned())
    }

    fn throttled(&self, status_page: &str, data: serde_json::Value, secs: u64) -> Response {
        let mut data = data;
        data["error"] = format!("Too many attempts. Try again in {secs} seconds.").into();
        match self.render(
            StatusCode::TOO_MANY_REQUESTS,
            status_page,
            "Too many attempts",
            &data,
        ) {
            Ok(mut res) => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                res
            }
            Err(e) => e.into_response(),
        }
    }
}

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
async fn address_throttled(v: &Visitor) -> Option<u64> {
    v.platform
        .auth()
        .throttle()
        .address(v.ctx.ip())
        .await
        .err()
        .map(|t| t.seconds())
}

/// The seconds of a `throttled` validation error, if `e` is one.
fn throttled_secs(e: &Error) -> Option<u64> {
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
fn field_errors(e: &Error) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    if let Error::Validation(errors) = e {
        for f in errors.iter() {
            out.entry(f.field.clone())
                .or_insert_with(|| f.message.clone().into());
        }
    }
    out
}

fn cut(s: Option<&str>, max: usize) -> String {
    s.unwrap_or_default().trim().chars().take(max).collect()
}

fn password(form: &FormData, name: &str) -> String {
    form.get(name)
        .unwrap_or_default()
        .chars()
        .take(MAX_PASSWORD_INPUT)
        .collect()
}

/// The site's public address for links in e-mails (see
/// [`Config::public_url`](platform_core::config::Config::public_url)).
fn app_url(platform: &Platform) -> String {
    platform.config().public_url.clone()
}

/// Sends `mail` in the background: the answer must not wait on (or tell
/// about) the mail server, and must take the same time whether or not the
/// account exists. Failures are logged without the body.
fn send_later(platform: &Platform, mail: Mail) {
    let mailer = platform.mailer().clone();
    tokio::spawn(async move {
        if let Err(e) = mailer.send(&mail).await {
            tracing::warn!(error = %e, subject = %mail.subject, "a mail could not be sent");
        }
    });
}

// ---- sign-in -----------------------------------------------------------

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

/// One parameter of a raw query string.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    super::form::parse_urlencoded(query?.as_bytes())?
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
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

// ---- two-factor challenge ----------------------------------------------

fn challenge_data(v: &Visitor) -> serde_json::Value {
    serde_json::json!({
        "action": format!("{}/two-factor-challenge", v.base()),
        "cancel": format!("{}/login", v.base()),
    })
}

/// `GET /two-factor-challenge`
pub(crate) async fn challenge_form(v: Visitor) -> Result<Response, PanelError> {
    if v.session
        .as_ref()
        .and_then(Session::pending_login)
        .is_none()
    {
        return Ok(v.redirect(&format!("{}/login", v.base())));
    }
    v.render(
        StatusCode::OK,
        "auth/two_factor_challenge.html",
        "Two-factor authentication",
        &challenge_data(&v),
    )
}

/// `POST /two-factor-challenge`: a TOTP `code` or a `recovery_code`.
pub(crate) async fn challenge(mut v: Visitor, form: FormData) -> Result<Response, PanelError> {
    let Some(user_id) = v.session.as_ref().and_then(Session::pending_login) else {
        return Ok(v.redirect_with(
            &format!("{}/login", v.base()),
            Flash::error("The sign-in took too long. Sign in again."),
        ));
    };
    if let Some(secs) = address_throttled(&v).await {
        let mut values = platform_core::audit::AuditValues::new();
        values.insert("step".into(), "two_factor".into());
        values.insert("retry_after".into(), secs.into());
        v.platform
            .auth()
            .record_security_event(&v.ctx, platform_core::auth::LOCKED_OUT, user_id, values)
            .await;
        return Ok(v.throttled("auth/two_factor_challenge.html", challenge_data(&v), secs));
    }
    let auth = v.platform.auth().clone();
    let recovery = form.get("recovery_code").map(|c| cut(Some(c), 64));
    let checked = match &recovery {
        Some(code) if !code.is_empty() => {
            auth.two_factor()
                .use_recovery_code(&v.ctx, user_id, code)
                .await
        }
        _ => {
            let code = cut(form.get("code"), 16);
            auth.two_factor().verify_code(&v.ctx, user_id, &code).await
        }
    };
    let mut data = challenge_data(&v);
    match checked {
        Ok(true) => {
            let ctx = v.ctx.clone();
            let s = v.posted_session()?;
            s.clear_pending_login();
            let token = auth.sessions().login(&ctx, s, user_id).await?;
            v.set_cookie = Some(v.cookie_for(&token));
            let intended = v.take_intended().await?;
            let to = v.safe_next(intended.as_deref()).unwrap_or_else(|| v.home());
            Ok(v.redirect(&to))
        }
        Ok(false) => {
            if recovery.is_some() {
                data["recovery_error"] = "The recovery code is not valid.".into();
                data["recovery_open"] = true.into();
            } else {
                data["error"] = "The code is not valid.".into();
            }
            v.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                "auth/two_factor_challenge.html",
                "Two-factor authentication",
                &data,
            )
        }
        Err(e) => match throttled_secs(&e) {
            Some(secs) => Ok(v.throttled("auth/two_factor_challenge.html", data, secs)),
            None => Err(e.into()),
        },
    }
}

// ---- two-factor set-up -------------------------------------------------

/// The signed-in user of a session that may still lack its second factor.
fn half_signed_in(v: &Visitor) -> Option<i64> {
    v.session
        .as_ref()
        .filter(|s| s.is_authenticated())
        .and_then(Session::user_id)
}

async fn setup_page(
    v: &Visitor,
    ctx: &Context,
    user_id: i64,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response, PanelError> {
    let two_factor = v.platform.auth().two_factor();
    let setup = match two_factor.pending_setup(ctx, user_id).await? {
        Some(s) => s,
        None => two_factor.begin_setup(ctx, user_id).await?,
    };
    let data = serde_json::json!({
        "action": format!("{}/two-factor/setup", v.base()),
        "secret": setup.secret_base32,
        "uri": setup.otpauth_uri,
        // Generated by the `qrcode` crate from our own URI: shown as is.
        "qr_svg": setup.qr_svg,
        "error": error,
    });
    v.render(
        status,
        "auth/two_factor_setup.html",
        "Set up two-factor authentication",
        &data,
    )
}

/// The set-up page again, with a 429 and `Retry-After`.
async fn setup_throttled(
    v: &Visitor,
    ctx: &Context,
    user_id: i64,
    secs: u64,
) -> Result<Response, PanelError> {
    let message = format!("Too many attempts. Try again in {secs} seconds.");
    let mut res = setup_page(
        v,
        ctx,
        user_id,
        StatusCode::TOO_MANY_REQUESTS,
        Some(&message),
    )
    .await?;
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    Ok(res)
}

/// Where a half-signed-in session whose account already has two-factor
/// authentication (enabled from another session) goes: signed out, to sign
/// in again with a code.
async fn restart_sign_in(v: &Visitor) -> Result<Response, PanelError> {
    if let Some(token) = &v.token {
        v.platform.auth().sessions().logout(&v.ctx, token).await?;
    }
    let mut res = v.redirect_with(
        &format!("{}/login", v.base()),
        Flash::success("Two-factor authentication is on. Sign in again with a code."),
    );
    session::append_cookie(
        &mut res,
        session::clear_cookie(v.base(), session::secure_cookies(&v.platform)),
    );
    Ok(res)
}

/// `GET /two-factor/setup`: the QR code and secret for the app.
pub(crate) async fn setup_form(v: Visitor, parts: RequestPath) -> Result<Response, PanelError> {
    if v.fully_signed_in() {
        return Ok(v.redirect(&v.home()));
    }
    let Some(user_id) = half_signed_in(&v) else {
        return Ok(LoginRedirect::new(v.base(), &parts.0).into_response());
    };
    let Some(ctx) = v.user_ctx(user_id).await? else {
        return Ok(LoginRedirect::new(v.base(), &parts.0).into_response());
    };
    if must_change_password(&v) {
        return Ok(v.redirect(&format!("{}/change-password", v.base())));
    }
    if v.platform.auth().two_factor().is_enabled(user_id).await? {
        return restart_sign_in(&v).await;
    }
    setup_page(&v, &ctx, user_id, StatusCode::OK, None).await
}

/// `POST /two-factor/setup`: confirms the set-up with a code, signs the
/// session in with both factors and shows the recovery codes once.
pub(crate) async fn setup(
    mut v: Visitor,
    parts: RequestPath,
    form: FormData,
) -> Result<Response, PanelError> {
    let Some(user_id) = half_signed_in(&v) else {
        return Ok(LoginRedirect::new(v.base(), &parts.0).into_response());
    };
    let Some(ctx) = v.user_ctx(user_id).await? else {
        return Ok(LoginRedirect::new(v.base(), &parts.0).into_response());
    };
    if must_change_password(&v) {
        return Ok(v.redirect(&format!("{}/change-password", v.base())));
    }
    let auth = v.platform.auth().clone();
    let code = cut(form.get("code"), 16);
    if let Some(secs) = address_throttled(&v).await {
        return setup_throttled(&v, &ctx, user_id, secs).await;
    }
    match auth.two_factor().confirm_setup(&ctx, user_id, &code).await {
        Ok(codes) => {
            let s = v.posted_session()?;
            let token = auth.sessions().login(&ctx, s, user_id).await?;
            v.set_cookie = Some(v.cookie_for(&token));
            let intended = v.take_intended().await?;
            let next = v.safe_next(intended.as_deref()).unwrap_or_else(|| v.home());
            let data = serde_json::json!({
                "codes": codes.codes(),
                "next": next,
                "enabled": true,
            });
            v.render(
                StatusCode::OK,
                "auth/recovery_codes.html",
                "Recovery codes",
                &data,
            )
        }
        Err(Error::Conflict { .. }) => restart_sign_in(&v).await,
        Err(e) => {
            if let Some(secs) = throttled_secs(&e) {
                return setup_throttled(&v, &ctx, user_id, secs).await;
            }
            if matches!(e, Error::Validation(_)) {
                return setup_page(
                    &v,
                    &ctx,
                    user_id,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("The code is not valid. Check the time on your device and try again."),
                )
                .await;
            }
            Err(e.into())
        }
    }
}

// ---- forced password change --------------------------------------------

/// Whether the session's user signed in with a generated password not yet
/// replaced ([`platform_core::access::User::password_change_required`]).
fn must_change_password(v: &Visitor) -> bool {
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

/// The request's path and query (as the client sent them).
pub(crate) struct RequestPath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for RequestPath {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(original_path_and_query(parts)))
    }
}

// ---- password reset ----------------------------------------------------

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

// ---- e-mail verification -----------------------------------------------

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
fn send_verification(platform: &Platform, base: &str, user: &platform_core::access::User) {
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

// ---- password confirmation ---------------------------------------------

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

// ---- registration ------------------------------------------------------

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

// ---- profile -----------------------------------------------------------

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
