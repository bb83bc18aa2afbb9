//! Users: the list, a new user, and a user's roles and direct permissions.

use std::collections::{BTreeSet, HashSet};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use platform_core::access::NewUser;
use platform_core::error::FieldErrors;
use platform_core::permission::{Ability, SUPER_ADMIN, permission_name};
use serde::Serialize;

use super::errors_text;
use crate::panel::error::PanelError;
use crate::panel::flash::Flash;
use crate::panel::form::FormData;
use crate::panel::format;
use crate::panel::render::Panel;
use crate::panel::signin::rotate_panel_session;

fn perm(ability: Ability) -> String {
    permission_name(ability, "user")
}

#[derive(Debug, Serialize)]
struct UserRow {
    id: i64,
    name: String,
    email: String,
    two_factor: bool,
    verified: bool,
    disabled: bool,
    created: String,
    href: String,
}

#[derive(Debug, Serialize)]
struct UsersPage {
    users: Vec<UserRow>,
    can_create: bool,
    new_href: String,
}

/// `GET /access/users`.
pub(crate) async fn index(p: Panel) -> Result<Response, PanelError> {
    p.require(&perm(Ability::ViewAny))?;
    let base = p.base().to_owned();
    let users = p
        .platform
        .access()
        .users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            href: format!("{base}/access/users/{}", u.id),
            id: u.id,
            name: u.name,
            email: u.email,
            two_factor: u.two_factor_confirmed_at.is_some(),
            verified: u.email_verified_at.is_some(),
            disabled: u.disabled_at.is_some(),
            created: format::time(&u.created_at),
        })
        .collect();
    let page = UsersPage {
        users,
        can_create: p.can(&perm(Ability::Create)),
        new_href: format!("{base}/access/users/new"),
    };
    p.render("access/users.html", "Users", &page).await
}

#[derive(Debug, Serialize)]
struct NewUserPage {
    action: String,
    email: String,
    name: String,
    errors: Vec<(String, String)>,
}

async fn new_page(
    p: &Panel,
    form: Option<&FormData>,
    errors: &FieldErrors,
    status: StatusCode,
) -> Result<Response, PanelError> {
    let page = NewUserPage {
        action: format!("{}/access/users", p.base()),
        email: form
            .and_then(|f| f.get("email"))
            .unwrap_or_default()
            .to_owned(),
        name: form
            .and_then(|f| f.get("name"))
            .unwrap_or_default()
            .to_owned(),
        errors: errors
            .iter()
            .map(|e| (e.field.clone(), e.message.clone()))
            .collect(),
    };
    p.render_status(status, "access/user_new.html", "New user", &page)
        .await
}

/// `GET /access/users/new`.
pub(crate) async fn new_form(p: Panel) -> Result<Response, PanelError> {
    p.require(&perm(Ability::Create))?;
    new_page(&p, None, &FieldErrors::default(), StatusCode::OK).await
}

/// `POST /access/users`.
pub(crate) async fn create(p: Panel, form: FormData) -> Result<Response, PanelError> {
    p.require(&perm(Ability::Create))?;
    let input = NewUser {
        email: form.get("email").unwrap_or_default().to_owned(),
        name: form.get("name").unwrap_or_default().to_owned(),
        password: form.get("password").unwrap_or_default().to_owned(),
    };
    match p.platform.access().create_user(p.ctx(), input).await {
        Ok(u) => Ok(p.redirect_with(
            &format!("{}/access/users/{}", p.base(), u.id),
            Flash::success(format!("Created user {}.", u.email)),
        )),
        Err(platform_core::Error::Validation(e)) => {
            new_page(&p, Some(&form), &e, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    checked: bool,
    disabled: bool,
    note: &'static str,
}

#[derive(Debug, Serialize)]
struct UserPage {
    user: UserRow,
    action: String,
    roles: Vec<Check>,
    permissions: Vec<Check>,
    can_update: bool,
    /// Whether the account can be disabled / its two-factor reset here.
    can_manage: bool,
    tokens_href: Option<String>,
    /// The account's recent security events, newest first.
    security_events: Vec<SecurityEventRow>,
    /// Whether the events show client addresses and user agents (to
    /// holders of `update_user` only: they are personal data).
    show_clients: bool,
}

#[derive(Debug, Serialize)]
struct SecurityEventRow {
    when: String,
    label: String,
    detail: String,
    /// A failed or refused attempt (shown highlighted).
    failure: bool,
    ip: String,
    user_agent: String,
}

/// How many security events the user's page shows.
const SECURITY_EVENTS_SHOWN: usize = 25;

/// The account's recent security events (sign-ins, failures, lock-outs,
/// two-factor and password changes), with human labels.
async fn security_events(p: &Panel, user_id: i64) -> Result<Vec<SecurityEventRow>, PanelError> {
    use platform_core::auth::{USER_SECURITY_EVENTS, event_label, reason_label};
    let entries = p
        .platform
        .audit()
        .for_record("user", &user_id.to_string(), 200)
        .await?;
    Ok(entries
        .into_iter()
        .filter(|e| USER_SECURITY_EVENTS.contains(&e.event.as_str()))
        .take(SECURITY_EVENTS_SHOWN)
        .map(|e| {
            let values = e.new_values_map();
            let mut detail: Vec<String> = Vec::new();
            for key in ["reason", "step"] {
                if let Some(r) = values.get(key).and_then(|v| v.as_str()) {
                    detail.push(reason_label(r).unwrap_or(r).to_owned());
                }
            }
            if values.get("two_factor") == Some(&serde_json::Value::Bool(true)) {
                detail.push("with two-factor authentication".to_owned());
            }
            if let Some(n) = values.get("suppressed").and_then(serde_json::Value::as_u64) {
                detail.push(format!("and {n} more like it not recorded"));
            }
            SecurityEventRow {
                when: format::time(&e.created_at),
                label: event_label(&e.event)
                    .map_or_else(|| e.event.replace('_', " "), str::to_owned),
                detail: detail.join("; "),
                failure: e.event.ends_with("_failed") || e.event == "locked_out",
                ip: e.ip.unwrap_or_default(),
                user_agent: e.user_agent.unwrap_or_default(),
            }
        })
        .collect())
}

/// `GET /access/users/{id}`: roles, direct permissions, password.
pub(crate) async fn edit(p: Panel, Path(id): Path<String>) -> Result<Response, PanelError> {
    p.require(&perm(Ability::View))?;
    let id: i64 = id.parse().map_err(|_| PanelError::NotFound)?;
    let access = p.platform.access();
    let user = access.user(id).await?.ok_or(PanelError::NotFound)?;
    let grants = access.grants(id).await?;
    let held_roles: HashSet<&str> = grants.roles().iter().map(String::as_str).collect();
    let mut via_roles: HashSet<String> = HashSet::new();
    for r in grants.roles() {
        via_roles.extend(access.role_permissions(r).await?);
    }
    let direct: HashSet<&str> = grants
        .permissions()
        .filter(|p| !via_roles.contains(*p))
        .collect();
    let can_update = p.can(&perm(Ability::Update));
    let is_self = p.auth.user.id == id;
    let actor_is_super = matches!(
        p.ctx().actor(),
        platform_core::Actor::User(pr) if pr.grants.is_super_admin()
    );
    let roles = access
        .roles()
        .await?
        .into_iter()
        .map(|r| Check {
            checked: held_roles.contains(r.as_str()),
            disabled: !can_update || r == SUPER_ADMIN && !actor_is_super,
            note: "",
            name: r,
        })
        .collect();
    let permissions = access
        .permissions()
        .await?
        .into_iter()
        .map(|name| {
            let via = via_roles.contains(&name);
            Check {
                checked: direct.contains(name.as_str()) || via,
                disabled: !can_update || via,
                note: if via { "via role" } else { "" },
                name,
            }
        })
        .collect();
    let base = p.base().to_owned();
    let page = UserPage {
        user: UserRow {
            href: format!("{base}/access/users/{id}"),
            id,
            name: user.name.clone(),
            email: user.email.clone(),
            two_factor: user.two_factor_confirmed_at.is_some(),
            verified: user.email_verified_at.is_some(),
            disabled: user.disabled_at.is_some(),
            created: format::time(&user.created_at),
        },
        action: format!("{base}/access/users/{id}"),
        can_manage: can_update && !is_self && (!grants.is_super_admin() || actor_is_super),
        roles,
        permissions,
        can_update,
        tokens_href: (can_update || is_self).then(|| {
            if is_self {
                format!("{base}/access/tokens")
            } else {
                format!("{base}/access/users/{id}/tokens")
            }
        }),
        security_events: security_events(&p, id).await?,
        show_clients: can_update,
    };
    p.render("access/user_edit.html", &user.email, &page).await
}

/// `POST /access/users/{id}`: `roles` and `permissions` (repeated) are the
/// wanted roles and direct permissions; `password`, when not empty, is set.
pub(crate) async fn update(
    p: Panel,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PanelError> {
    p.require(&perm(Ability::Update))?;
    let id: i64 = id.parse().map_err(|_| PanelError::NotFound)?;
    let access = p.platform.access();
    access.user(id).await?.ok_or(PanelError::NotFound)?;
    let href = format!("{}/access/users/{id}", p.base());
    let grants = access.grants(id).await?;
    let mut via_roles: HashSet<String> = HashSet::new();
    for r in grants.roles() {
        via_roles.extend(access.role_permissions(r).await?);
    }
    let have_roles: BTreeSet<&str> = grants.roles().iter().map(String::as_str).collect();
    let want_roles: BTreeSet<&str> = form.all("roles").collect();
    let have_direct: BTreeSet<&str> = grants
        .permissions()
        .filter(|p| !via_roles.contains(*p))
        .collect();
    let want_direct: BTreeSet<&str> = form
        .all("permissions")
        .filter(|p| !via_roles.contains(*p))
        .collect();
    let ctx = p.ctx();
    let is_self = p.auth.user.id == id;
    let mut changed = false;
    let result: platform_core::Result<()> = async {
        for r in want_roles.difference(&have_roles) {
            access.assign_role(ctx, id, r).await?;
            changed = true;
        }
        for r in have_roles.difference(&want_roles) {
            access.remove_role(ctx, id, r).await?;
            changed = true;
        }
        for perm in want_direct.difference(&have_direct) {
            access.grant_user_permission(ctx, id, perm).await?;
            changed = true;
        }
        for perm in have_direct.difference(&want_direct) {
            access.revoke_user_permission(ctx, id, perm).await?;
            changed = true;
        }
        if let Some(pw) = form.get("password").filter(|s| !s.is_empty()) {
            access.set_password(ctx, id, pw).await?;
            changed = true;
            // A new password ends the account's sessions (whoever knew the
            // old one is signed out), but the one making the change.
            let own = p
                .session
                .as_ref()
                .and_then(|r| r.token.as_deref())
                .filter(|_| is_self);
            p.platform
                .auth()
                .sessions()
                .destroy_user_sessions(ctx, id, own)
                .await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            let mut res = p.redirect_with(&href, Flash::success("Saved."));
            // The signed-in user's own privileges changed: a new session id.
            if is_self && changed {
                rotate_panel_session(&p, &mut res).await?;
            }
            Ok(res)
        }
        Err(platform_core::Error::Validation(e)) => {
            Ok(p.redirect_with(&href, Flash::error(errors_text(&e))))
        }
        Err(platform_core::Error::NotFound { resource, id }) => Ok(p.redirect_with(
            &href,
            Flash::error(format!("There is no {resource} `{id}`.")),
        )),
        Err(e) => Err(e.into()),
    }
}

/// 403 unless the signed-in user may manage account `id`'s security
/// (`update_user`; a super admin's account only by a super admin).
async fn guard_account(p: &Panel, id: i64) -> Result<(), PanelError> {
    p.require(&perm(Ability::Update))?;
    let target = p.platform.access().grants(id).await?;
    let actor_is_super = matches!(
        p.ctx().actor(),
        platform_core::Actor::User(pr) if pr.grants.is_super_admin()
    );
    if target.is_super_admin() && !actor_is_super {
        return Err(platform_core::Error::PermissionDenied {
            ability: SUPER_ADMIN.to_owned(),
        }
        .into());
    }
    Ok(())
}

/// `POST /access/users/{id}/status`: `disabled=1` disables the account
/// (its sessions end, its tokens stop working), `disabled=0` enables it.
pub(crate) async fn set_status(
    p: Panel,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PanelError> {
    let id: i64 = id.parse().map_err(|_| PanelError::NotFound)?;
    guard_account(&p, id).await?;
    p.platform
        .access()
        .user(id)
        .await?
        .ok_or(PanelError::NotFound)?;
    let disabled = form.get("disabled") == Some("1");
    let href = format!("{}/access/users/{id}", p.base());
    match p.platform.auth().set_disabled(p.ctx(), id, disabled).await {
        Ok(()) => Ok(p.redirect_with(
            &href,
            Flash::success(if disabled {
                "The account is disabled; its sessions ended."
            } else {
                "The account is enabled."
            }),
        )),
        Err(platform_core::Error::Conflict { message, .. }) => {
            Ok(p.redirect_with(&href, Flash::error(message)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /access/users/{id}/two-factor/reset`: turns the user's two-factor
/// authentication off (a lost device); they set it up again at their next
/// sign-in.
pub(crate) async fn reset_two_factor(
    p: Panel,
    Path(id): Path<String>,
    _form: FormData,
) -> Result<Response, PanelError> {
    let id: i64 = id.parse().map_err(|_| PanelError::NotFound)?;
    guard_account(&p, id).await?;
    p.platform
        .access()
        .user(id)
        .await?
        .ok_or(PanelError::NotFound)?;
    p.platform.auth().two_factor().disable(p.ctx(), id).await?;
    // Their sessions end too: the next sign-in starts the set-up.
    p.platform
        .auth()
        .sessions()
        .destroy_user_sessions(p.ctx(), id, None)
        .await?;
    Ok(p.redirect_with(
        &format!("{}/access/users/{id}", p.base()),
        Flash::success(
            "Two-factor authentication was reset; the user sets it up again at the next sign-in.",
        ),
    ))
}
