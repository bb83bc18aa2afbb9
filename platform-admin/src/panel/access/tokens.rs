//! API tokens: the signed-in user's own (`/access/tokens`), or another
//! user's for holders of `update_user` (`/access/users/{id}/tokens`).
//! A new token's plain text is shown once, in the answer to the `POST`
//! that created it (never stored, never in a redirect or a cookie).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, Utc};
use platform_core::access::User;
use platform_core::error::FieldErrors;
use platform_core::permission::{Ability, permission_name};
use serde::Serialize;

use super::errors_text;
use crate::panel::error::PanelError;
use crate::panel::fields::OptionView;
use crate::panel::flash::Flash;
use crate::panel::form::FormData;
use crate::panel::format;
use crate::panel::render::Panel;

/// Expiry choices, in days (0: never).
const EXPIRIES: [(u32, &str); 5] = [
    (30, "30 days"),
    (90, "90 days"),
    (365, "1 year"),
    (7, "7 days"),
    (0, "never"),
];

#[derive(Debug, Serialize)]
struct TokenRow {
    id: i64,
    name: String,
    abilities: String,
    expires: String,
    expired: bool,
    last_used: String,
    revoked: bool,
    created: String,
    revoke_action: Option<String>,
}

#[derive(Debug, Serialize)]
struct NewTokenView {
    name: String,
    plain: String,
}

#[derive(Debug, Serialize)]
struct TokensPage {
    owner: String,
    own: bool,
    action: String,
    back: String,
    tokens: Vec<TokenRow>,
    new_token: Option<NewTokenView>,
    expiries: Vec<OptionView>,
    name: String,
    abilities: String,
    errors: Vec<String>,
}

/// The user whose tokens the page shows: the signed-in user, or `id` for
/// holders of `update_user`.
async fn owner(p: &Panel, id: Option<&str>) -> Result<User, PanelError> {
    let Some(id) = id else {
        return Ok(p.auth.user.clone());
    };
    let id: i64 = id.parse().map_err(|_| PanelError::NotFound)?;
    if id != p.auth.user.id {
        p.require(&permission_name(Ability::Update, "user"))?;
    }
    p.platform
        .access()
        .user(id)
        .await?
        .ok_or(PanelError::NotFound)
}

fn tokens_href(p: &Panel, owner: &User) -> String {
    if owner.id == p.auth.user.id {
        format!("{}/access/tokens", p.base())
    } else {
        format!("{}/access/users/{}/tokens", p.base(), owner.id)
    }
}

async fn page(
    p: &Panel,
    owner: &User,
    new_token: Option<NewTokenView>,
    form: Option<&FormData>,
    errors: &FieldErrors,
    status: StatusCode,
) -> Result<Response, PanelError> {
    let now = Utc::now();
    let href = tokens_href(p, owner);
    let tokens = p
        .platform
        .access()
        .tokens(owner.id)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            revoke_action: t
                .revoked_at
                .is_none()
                .then(|| format!("{}/access/tokens/{}/revoke", p.base(), t.id)),
            id: t.id,
            name: t.name,
            abilities: t.abilities.join(", "),
            expired: t.expires_at.is_some_and(|e| e <= now),
            expires: t
                .expires_at
                .map_or_else(|| "never".to_owned(), |e| format::time(&e)),
            last_used: t.last_used_at.map(|e| format::time(&e)).unwrap_or_default(),
            revoked: t.revoked_at.is_some(),
            created: format::time(&t.created_at),
        })
        .collect();
    let chosen = form.and_then(|f| f.get("expires_in")).unwrap_or("90");
    let data = TokensPage {
        owner: owner.email.clone(),
        own: owner.id == p.auth.user.id,
        action: href.clone(),
        back: href,
        tokens,
        new_token,
        expiries: EXPIRIES
            .iter()
            .map(|(d, label)| OptionView {
                value: d.to_string(),
                label: (*label).to_owned(),
                selected: d.to_string() == chosen,
            })
            .collect(),
        name: form
            .and_then(|f| f.get("name"))
            .unwrap_or_default()
            .to_owned(),
        abilities: form
            .and_then(|f| f.get("abilities"))
            .unwrap_or_default()
            .to_owned(),
        errors: errors
            .iter()
            .map(|e| format!("{} {}", e.field, e.message))
            .collect(),
    };
    p.render_status(status, "access/tokens.html", "API tokens", &data)
        .await
}

async fn show(p: &Panel, id: Option<&str>) -> Result<Response, PanelError> {
    let owner = owner(p, id).await?;
    page(
        p,
        &owner,
        None,
        None,
        &FieldErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn create_token(
    p: &Panel,
    id: Option<&str>,
    form: &FormData,
) -> Result<Response, PanelError> {
    let owner = owner(p, id).await?;
    let name = form.get("name").unwrap_or_default();
    let abilities: Vec<String> = form
        .get("abilities")
        .unwrap_or_default()
        .split([',', '\n', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut errors = FieldErrors::default();
    let expires_at = match form.get("expires_in").unwrap_or("90").parse::<u32>() {
        Ok(0) => None,
        Ok(d) if d <= 3650 => Some(Utc::now() + Duration::days(i64::from(d))),
        _ => {
            errors.add("expires_in", "invalid", "must be a number of days");
            None
        }
    };
    if !errors.is_empty() {
        return page(
            p,
            &owner,
            None,
            Some(form),
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match p
        .platform
        .access()
        .create_token(p.ctx(), owner.id, name, &abilities, expires_at)
        .await
    {
        Ok(t) => {
            let view = NewTokenView {
                name: t.info.name.clone(),
                plain: t.plain_text,
            };
            page(
                p,
                &owner,
                Some(view),
                None,
                &FieldErrors::default(),
                StatusCode::CREATED,
            )
            .await
        }
        Err(platform_core::Error::Validation(e)) => {
            page(
                p,
                &owner,
                None,
                Some(form),
                &e,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /access/tokens`.
pub(crate) async fn index(p: Panel) -> Result<Response, PanelError> {
    show(&p, None).await
}

/// `POST /access/tokens`: `name`, `abilities` (permission names separated
/// by commas or lines; empty: all of the owner's), `expires_in` (days, 0:
/// never).
pub(crate) async fn create(p: Panel, form: FormData) -> Result<Response, PanelError> {
    create_token(&p, None, &form).await
}

/// `GET /access/users/{id}/tokens`.
pub(crate) async fn index_for(p: Panel, Path(id): Path<String>) -> Result<Response, PanelError> {
    show(&p, Some(&id)).await
}

/// `POST /access/users/{id}/tokens`.
pub(crate) async fn create_for(
    p: Panel,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PanelError> {
    create_token(&p, Some(&id), &form).await
}

/// `POST /access/tokens/{id}/revoke`: `back` is where to return.
pub(crate) async fn revoke(
    p: Panel,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PanelError> {
    let id: i64 = id.parse().map_err(|_| PanelError::NotFound)?;
    let back = p.safe_back(form.get("back"), format!("{}/access/tokens", p.base()));
    match p.platform.access().revoke_token(p.ctx(), id).await {
        Ok(()) => Ok(p.redirect_with(&back, Flash::success("Token revoked."))),
        Err(platform_core::Error::Validation(e)) => {
            Ok(p.redirect_with(&back, Flash::error(errors_text(&e))))
        }
        Err(e) => Err(e.into()),
    }
}
