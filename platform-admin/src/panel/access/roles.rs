//! Roles and the role editor: one grid of every resource (rows) × the ten
//! abilities (columns), the framework's user and role permissions, the
//! global permissions and any other permission, saved with one `POST`
//! (`set_role_permissions`). The grid is built in one pass from two
//! queries (the role's permissions, every permission); no query per cell.

use std::collections::HashSet;

use axum::extract::Path;
use axum::response::Response;
use platform_core::access::ACCESS_RESOURCES;
use platform_core::permission::{
    Ability, GLOBAL_PERMISSIONS, ResourcePermissions, SUPER_ADMIN, permission_name,
};
use serde::Serialize;

use super::errors_text;
use crate::panel::error::PanelError;
use crate::panel::flash::Flash;
use crate::panel::form::FormData;
use crate::panel::format::encode_component;
use crate::panel::render::Panel;
use crate::panel::signin::rotate_panel_session;

fn perm(ability: Ability) -> String {
    permission_name(ability, "role")
}

fn role_href(p: &Panel, name: &str) -> String {
    format!("{}/access/roles/{}", p.base(), encode_component(name))
}

#[derive(Debug, Serialize)]
struct RoleRow {
    name: String,
    href: String,
    delete_href: Option<String>,
}

#[derive(Debug, Serialize)]
struct RolesPage {
    roles: Vec<RoleRow>,
    can_create: bool,
    action: String,
}

/// `GET /access/roles`.
pub(crate) async fn index(p: Panel) -> Result<Response, PanelError> {
    p.require(&perm(Ability::ViewAny))?;
    let can_delete = p.can(&perm(Ability::Delete));
    let roles = p
        .platform
        .access()
        .roles()
        .await?
        .into_iter()
        .map(|name| {
            let href = role_href(&p, &name);
            RoleRow {
                delete_href: (can_delete && name != SUPER_ADMIN).then(|| format!("{href}/delete")),
                href,
                name,
            }
        })
        .collect();
    let page = RolesPage {
        roles,
        can_create: p.can(&perm(Ability::Create)),
        action: format!("{}/access/roles", p.base()),
    };
    p.render("access/roles.html", "Roles", &page).await
}

/// `POST /access/roles`: `name`.
pub(crate) async fn create(p: Panel, form: FormData) -> Result<Response, PanelError> {
    p.require(&perm(Ability::Create))?;
    let name = form.get("name").unwrap_or_default().trim().to_owned();
    let list = format!("{}/access/roles", p.base());
    match p.platform.access().create_role(p.ctx(), &name).await {
        Ok(_) => Ok(p.redirect_with(
            &role_href(&p, &name),
            Flash::success(format!("Created role {name}.")),
        )),
        Err(platform_core::Error::Validation(e)) => {
            Ok(p.redirect_with(&list, Flash::error(errors_text(&e))))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Serialize)]
struct Cell {
    perm: String,
    checked: bool,
}

#[derive(Debug, Serialize)]
struct GridRow {
    key: String,
    label: String,
    cells: Vec<Cell>,
    all: bool,
}

#[derive(Debug, Serialize)]
struct Single {
    perm: String,
    label: String,
    checked: bool,
}

#[derive(Debug, Serialize)]
struct RoleEditPage {
    role: String,
    action: String,
    abilities: Vec<&'static str>,
    rows: Vec<GridRow>,
    access_rows: Vec<GridRow>,
    globals: Vec<Single>,
    others: Vec<Single>,
    can_update: bool,
    super_admin: bool,
    delete_href: Option<String>,
    granted: usize,
}

fn grid_row(
    key: &str,
    label: &str,
    perms: &ResourcePermissions,
    held: &HashSet<String>,
) -> GridRow {
    let cells: Vec<Cell> = perms
        .all()
        .map(|name| Cell {
            checked: held.contains(name),
            perm: name.to_owned(),
        })
        .collect();
    GridRow {
        all: cells.iter().all(|c| c.checked),
        key: key.to_owned(),
        label: label.to_owned(),
        cells,
    }
}

/// `GET /access/roles/{name}`: the permission grid.
pub(crate) async fn edit(p: Panel, Path(name): Path<String>) -> Result<Response, PanelError> {
    p.require(&perm(Ability::View))?;
    let access = p.platform.access();
    let all: Vec<String> = access.permissions().await?;
    if !access.roles().await?.contains(&name) {
        return Err(PanelError::NotFound);
    }
    let held: HashSet<String> = access.role_permissions(&name).await?.into_iter().collect();
    let mut covered: HashSet<&str> = HashSet::with_capacity(all.len());
    let registry = p.platform.registry();
    let mut rows = Vec::with_capacity(registry.len());
    for entry in registry.entries() {
        let meta = entry.meta();
        covered.extend(entry.permissions().all());
        rows.push(grid_row(
            meta.name(),
            meta.plural_label(),
            entry.permissions(),
            &held,
        ));
    }
    let access_perms: Vec<(&str, ResourcePermissions)> = ACCESS_RESOURCES
        .iter()
        .map(|r| (*r, ResourcePermissions::for_resource(r)))
        .collect();
    let mut access_rows = Vec::new();
    for (r, perms) in &access_perms {
        covered.extend(perms.all());
        let label = match *r {
            "user" => "Users",
            "role" => "Roles",
            other => other,
        };
        access_rows.push(grid_row(r, label, perms, &held));
    }
    let globals: Vec<Single> = GLOBAL_PERMISSIONS
        .iter()
        .map(|g| {
            covered.insert(g);
            Single {
                perm: (*g).to_owned(),
                label: match *g {
                    "view_pii" => "See personal data unmasked".to_owned(),
                    "view_encrypted" => "See encrypted fields".to_owned(),
                    "view_audit" => "See whole audit trails, with IPs".to_owned(),
                    other => other.to_owned(),
                },
                checked: held.contains(*g),
            }
        })
        .collect();
    let others: Vec<Single> = all
        .iter()
        .filter(|n| !covered.contains(n.as_str()))
        .map(|n| Single {
            perm: n.clone(),
            label: n.clone(),
            checked: held.contains(n),
        })
        .collect();
    let href = role_href(&p, &name);
    let page = RoleEditPage {
        action: href.clone(),
        abilities: Ability::ALL.iter().map(|a| a.prefix()).collect(),
        rows,
        access_rows,
        globals,
        others,
        can_update: p.can(&perm(Ability::Update)),
        super_admin: name == SUPER_ADMIN,
        delete_href: (p.can(&perm(Ability::Delete)) && name != SUPER_ADMIN)
            .then(|| format!("{href}/delete")),
        granted: held.len(),
        role: name.clone(),
    };
    p.render("access/role_edit.html", &format!("Role {name}"), &page)
        .await
}

/// Whether the signed-in user holds role `name` (as the request began):
/// a change of the role is a change of their privileges, which rotates
/// their session.
fn holds_role(p: &Panel, name: &str) -> bool {
    match p.ctx().actor() {
        platform_core::Actor::User(pr) => pr.grants.roles().iter().any(|r| r == name),
        _ => false,
    }
}

/// `POST /access/roles/{name}`: `p` (repeated) is the role's permissions.
pub(crate) async fn update(
    p: Panel,
    Path(name): Path<String>,
    form: FormData,
) -> Result<Response, PanelError> {
    p.require(&perm(Ability::Update))?;
    let mut perms: Vec<String> = form.all("p").map(str::to_owned).collect();
    perms.sort();
    perms.dedup();
    let href = role_href(&p, &name);
    match p
        .platform
        .access()
        .set_role_permissions(p.ctx(), &name, &perms)
        .await
    {
        Ok(()) => {
            let mut res = p.redirect_with(
                &href,
                Flash::success(format!("Saved {} permissions of role {name}.", perms.len())),
            );
            if holds_role(&p, &name) {
                rotate_panel_session(&p, &mut res).await?;
            }
            Ok(res)
        }
        Err(platform_core::Error::Validation(e)) => {
            Ok(p.redirect_with(&href, Flash::error(errors_text(&e))))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Serialize)]
struct ConfirmPage {
    heading: String,
    message: String,
    action: String,
    button: String,
    danger: bool,
    cancel: String,
    hidden: Vec<()>,
}

/// `GET /access/roles/{name}/delete`.
pub(crate) async fn confirm_delete(
    p: Panel,
    Path(name): Path<String>,
) -> Result<Response, PanelError> {
    p.require(&perm(Ability::Delete))?;
    if !p.platform.access().roles().await?.contains(&name) {
        return Err(PanelError::NotFound);
    }
    let href = role_href(&p, &name);
    let page = ConfirmPage {
        heading: format!("Delete role {name}?"),
        message: "Users with this role lose its permissions.".to_owned(),
        action: format!("{href}/delete"),
        button: "Delete".to_owned(),
        danger: true,
        cancel: href,
        hidden: Vec::new(),
    };
    p.render("confirm.html", &page.heading, &page).await
}

/// `POST /access/roles/{name}/delete`.
pub(crate) async fn delete(
    p: Panel,
    Path(name): Path<String>,
    _form: FormData,
) -> Result<Response, PanelError> {
    p.require(&perm(Ability::Delete))?;
    let list = format!("{}/access/roles", p.base());
    match p.platform.access().delete_role(p.ctx(), &name).await {
        Ok(()) => {
            let mut res = p.redirect_with(&list, Flash::success(format!("Deleted role {name}.")));
            if holds_role(&p, &name) {
                rotate_panel_session(&p, &mut res).await?;
            }
            Ok(res)
        }
        Err(platform_core::Error::Validation(e)) => {
            Ok(p.redirect_with(&list, Flash::error(errors_text(&e))))
        }
        Err(e) => Err(e.into()),
    }
}
